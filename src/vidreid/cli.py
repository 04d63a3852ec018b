"""The ``vidreid`` command line: one entry point, subcommands.

    vidreid synth   --layout {prid2011,ilidsvid,mars,dukev,folder} --preset NAME --out DIR [--seed N]
    vidreid stats   --dataset NAME --root DIR [--no-verify-files] [--split-id N] [--mars-gallery all_test|exclude_query]
    vidreid train   --config FILE [--resume CKPT] [key=value ...]
    vidreid test    --config FILE [--checkpoint CKPT] [--out DIR] [--rerank] [--visrank K] [key=value ...]
    vidreid flow    --dataset NAME --root DIR --method {tvl1,farneback,lk} [--workers N]
    vidreid prepare pets2009 --src DIR --out DIR
    vidreid visualize {attention,features} --config FILE [--checkpoint CKPT] --tracklet DIR [--out PNG]
    vidreid demo    [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import ConfigError, TrainingInterrupted, VidReIDError
from .fileio import WriteError


def _cmd_synth(a) -> int:
    import dataclasses

    import yaml

    from .data.synthetic import Preset, generate

    fields = {f.name for f in dataclasses.fields(Preset)}
    overrides = {}
    for item in a.set:
        key, sep, val = item.partition("=")
        if not sep or key not in fields:
            raise ConfigError(f"--set {item!r}: expected FIELD=VALUE with FIELD one of {sorted(fields)}")
        v = yaml.safe_load(val)
        if not isinstance(v, (int, float, list)) or isinstance(v, bool):
            raise ConfigError(f"--set {item!r}: {val!r} is not a number or a list such as [1,2]")
        overrides[key] = tuple(v) if isinstance(v, list) else v
    m = generate(a.layout, a.preset or a.layout, a.out, seed=a.seed, workers=a.workers, duke_style=a.duke_style,
                 progress=not a.quiet, **overrides)
    print(json.dumps({k: m[k] for k in ("layout", "preset", "seed", "frames_written", "lookalike_groups", "expected")}, indent=1))
    return 0


def _cmd_stats(a) -> int:
    from .data.datasets import build_dataset, dataset_kwargs

    ds = build_dataset(a.dataset, a.root, **dataset_kwargs(a.dataset, not a.no_verify_files, 0, a.mars_gallery))
    print(json.dumps(ds.stats(a.split_id), indent=1))
    return 0


def split_label(split_id: int, num_splits: int) -> str:
    """How a result table names its protocol: "split 0 of 10" (one split of a 10-split protocol,
    not comparable to the papers' means), or "single split" (MARS, DukeV, folder)."""
    return f"split {split_id} of {num_splits}" if num_splits > 1 else "single split"


def _cmd_train(a) -> int:
    from .config import load_config
    from .engine.distributed import init_from_env
    from .engine.evaluator import format_table
    from .engine.trainer import Trainer, train_all_splits

    cfg = load_config(a.config, list(a.overrides) + (["train.overwrite=true"] if a.overwrite else []))
    rank, _ = init_from_env()  # several processes under torchrun (engine/distributed.py); else a no-op
    say = print if rank == 0 else (lambda *x, **k: None)  # the other ranks train alongside; rank 0 reports
    if cfg.data.split_id == "all":
        if a.resume:
            raise ConfigError("--resume continues one split's run: give data.split_id=N with it "
                              f"(the checkpoint of split N is in {cfg.train.output_dir}/split_N/)")
        res = train_all_splits(cfg)
        n = res["summary"]["num_splits"]
        row = dict(res["summary"], dataset=cfg.data.dataset, model=cfg.model.name,
                   protocol=f"mean ± std of {n} splits" if n > 1 else "single split")
    else:
        tr = Trainer(cfg)
        res = tr.fit(resume=a.resume, allow_changes=a.allow_changes, overwrite=a.overwrite or None)
        if "per_source" in res:  # joint training: each source on its own protocol
            rows = [dict(m, dataset=name, model=cfg.model.name, protocol=split_label(m["split_id"], sp.num_splits))
                    for (name, m), (_, sp) in zip(res["per_source"].items(), tr.eval_splits)]
            say(format_table(rows))
            say(f"metrics: {Path(cfg.train.output_dir) / 'metrics.json'}")
            return 0
        row = dict(res, dataset=cfg.data.dataset, model=cfg.model.name,
                   protocol=split_label(cfg.data.split_id, tr.split.num_splits))
    say(format_table([row]))
    say(f"metrics: {Path(cfg.train.output_dir) / 'metrics.json'}")
    return 0


def _cmd_test(a) -> int:
    from .config import load_config
    from .data.datasets import build_dataset_from_config
    from .engine.evaluator import evaluate_split, format_table, pick_device, summarize, write_json
    from .engine.reports import plot_cmc, write_visrank
    from .engine.trainer import check_train_test_overlap, load_model_from_checkpoint
    from .models import create_model

    overrides = list(a.overrides) + (["test.rerank=true"] if a.rerank else [])
    cfg = load_config(a.config, overrides)
    st = None
    if a.checkpoint:
        model, _, st = load_model_from_checkpoint(a.checkpoint)
    else:
        model = create_model(cfg.model.name, num_classes=0, **cfg.model.args)
    ds = build_dataset_from_config(cfg.data)
    splits = list(range(ds.num_splits)) if cfg.data.split_id == "all" else [int(cfg.data.split_id)]
    dev = pick_device(cfg.train.device)
    out_dir = Path(a.out or Path(cfg.train.output_dir) / "test")
    per = []
    for s in splits:
        split = ds.split(s)
        if st is not None:
            check_train_test_overlap(st, split, cfg.test.allow_train_overlap)
        r = evaluate_split(model, split, cfg, dev, progress=cfg.train.progress, keep=a.visrank > 0)
        if a.visrank > 0:
            vis = write_visrank(split, r.pop("_distmat"), out_dir / "visrank" / f"split_{s}", topk=a.visrank,
                                height=cfg.data.height, width=cfg.data.width, max_queries=a.visrank_queries)
            print(f"visrank: {len(vis)} images in {vis[0].parent}")
        per.append(r)
    name = cfg.model.name + (" + re-ranking" if cfg.test.rerank else "") + (" (pairwise)" if cfg.test.mode == "pairwise" else "")
    res = {"per_split": per, "summary": summarize(per), "dataset": cfg.data.dataset, "model": name,
           "checkpoint": a.checkpoint}
    # the table first: a failed write (e.g. a full disk) must not lose the numbers
    if len(per) > 1:
        print(format_table([dict(r, dataset=cfg.data.dataset, model=name, protocol=split_label(r["split_id"], ds.num_splits))
                            for r in per], title="per split"))
        print()
    row = dict(res["summary"], dataset=cfg.data.dataset, model=name,
               protocol=f"mean ± std of {len(splits)} splits" if len(splits) > 1 else split_label(splits[0], ds.num_splits))
    print(format_table([row]), flush=True)
    write_json(res, out_dir / "metrics.json")
    png = plot_cmc(per, out_dir / "cmc.png", title=f"{cfg.data.dataset}: {name}")
    print(f"metrics: {out_dir / 'metrics.json'}; CMC curve: {png}")
    return 0


def _cmd_flow(a) -> int:
    from .data.datasets import build_dataset
    from .data.flow import compute_flow_cache

    ds = build_dataset(a.dataset, a.root, verify_files=False)
    man = compute_flow_cache(ds, a.method, workers=a.workers, bound=a.bound, progress=not a.quiet)
    print(json.dumps({k: v for k, v in man.items() if k != "signatures"}, indent=1))
    return 0


def _cmd_prepare(a) -> int:
    from .data.datasets.pets import prepare_pets2009

    print(json.dumps(prepare_pets2009(a.src, a.out), indent=1))
    return 0


def _cmd_demo(a) -> int:
    from .demo import run_demo

    run_demo(a.out, pets=a.pets)
    return 0


def _cmd_visualize(a) -> int:
    from .config import load_config
    from .engine.trainer import load_model_from_checkpoint
    from .engine.visualize import visualize
    from .models import create_model

    cfg = load_config(a.config, a.overrides)
    if a.checkpoint:
        model, _, _ = load_model_from_checkpoint(a.checkpoint)
    else:
        model = create_model(cfg.model.name, num_classes=0, **cfg.model.args)
    out = Path(a.out or Path(cfg.train.output_dir) / f"visualize_{a.kind}.png")
    try:
        path, info = visualize(a.kind, model, cfg, a.tracklet, out)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    for k, v in info.items():  # the numbers behind the figure (features: ||M_t - M_t-1|| / ||M_t-1||)
        print(f"{k}: {v}")
    print(f"{a.kind}: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .data.datasets import DATASETS
    from .data.synthetic import LAYOUTS

    p = argparse.ArgumentParser(prog="vidreid", description="Video-based person re-identification.")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("synth", help="generate a synthetic benchmark in an official layout")
    s.add_argument("--layout", required=True, choices=LAYOUTS)
    s.add_argument("--preset", default=None, help="tiny, or the layout's own name (default)")
    s.add_argument("--out", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--workers", type=int, default=None)
    s.add_argument("--duke-style", default="compact", choices=("compact", "underscore", "mixed"))
    s.add_argument("--quiet", action="store_true")
    s.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="change a preset field, e.g. --set ids=100 --set tracklets_per_cam=[1,2] (repeatable)")
    s.set_defaults(fn=_cmd_synth)

    s = sub.add_parser("stats", help="print a dataset's counts as JSON")
    s.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    s.add_argument("--root", required=True)
    s.add_argument("--no-verify-files", action="store_true", help="MARS: do not check the frame files exist")
    s.add_argument("--split-id", type=int, default=0)
    s.add_argument("--mars-gallery", choices=["all_test", "exclude_query"], default="all_test",
                   help="MARS gallery: all_test (official evaluation, default) or exclude_query (torchreid's)")
    s.set_defaults(fn=_cmd_stats)

    s = sub.add_parser("train", help="train (and evaluate) as a config says")
    s.add_argument("--config", required=True)
    s.add_argument("--resume", default=None, help="checkpoint to continue from")
    s.add_argument("--allow-changes", action="store_true",
                   help="with --resume: apply settings that differ from the checkpoint's (else an error listing them)")
    s.add_argument("--overwrite", action="store_true", help="replace a run already in train.output_dir")
    s.add_argument("overrides", nargs="*", help="key=value")
    s.set_defaults(fn=_cmd_train)

    s = sub.add_parser("test", help="evaluate a checkpoint (or an untrained model) on a dataset's protocol")
    s.add_argument("--config", required=True)
    s.add_argument("--checkpoint", default=None)
    s.add_argument("--out", default=None)
    s.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (test.rerank=true)")
    s.add_argument("--visrank", type=int, default=0, metavar="K", help="write each query's top-K ranking as an image")
    s.add_argument("--visrank-queries", type=int, default=None, help="only the first N queries")
    s.add_argument("overrides", nargs="*", help="key=value")
    s.set_defaults(fn=_cmd_test)

    s = sub.add_parser("visualize", help="look inside a model on one tracklet folder (attention maps, feature maps)")
    vs = s.add_subparsers(dest="kind", required=True)
    for kind, text in (("attention", "STAN receptive fields and temporal weights (Li et al. 2018, Fig. 3)"),
                       ("features", "raw vs refined feature-map responses (RRU, Liu et al. 2019, Fig. 3)")):
        v = vs.add_parser(kind, help=text)
        v.add_argument("--config", required=True)
        v.add_argument("--checkpoint", default=None, help="trained weights (default: the config's untrained model)")
        v.add_argument("--tracklet", required=True, help="a folder of one tracklet's frame images")
        v.add_argument("--out", default=None, help="PNG path (default: <output_dir>/visualize_<kind>.png)")
        v.add_argument("overrides", nargs="*", help="key=value")
        v.set_defaults(fn=_cmd_visualize)

    s = sub.add_parser("flow", help="compute and cache optical flow of every tracklet beside the dataset")
    s.add_argument("--dataset", required=True, choices=sorted(DATASETS))
    s.add_argument("--root", required=True)
    s.add_argument("--method", default="tvl1", choices=("tvl1", "farneback", "lk"))
    s.add_argument("--workers", type=int, default=1)
    s.add_argument("--bound", type=float, default=20.0, help="flow magnitude (pixels) mapped to 1 in the cache")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(fn=_cmd_flow)

    s = sub.add_parser("prepare", help="turn raw real data into tracklets")
    ps = s.add_subparsers(dest="what", required=True)
    pp = ps.add_parser("pets2009", help="PETS 2009 S2.L1 video + ground truth -> folder-layout tracklets")
    pp.add_argument("--src", required=True)
    pp.add_argument("--out", required=True)
    pp.set_defaults(fn=_cmd_prepare)

    s = sub.add_parser("demo", help="the main job: synthetic PRID-like benchmark, train, evaluate, real PETS check")
    s.add_argument("--out", default="outputs/demo")
    s.add_argument("--pets", default=None, help="PETS 2009 folder (default: $VIDREID_PETS or ../shared/data/pets2009_s2l1)")
    s.set_defaults(fn=_cmd_demo)
    return p


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 600 else text[:600] + " ..."


def main(argv: list[str] | None = None) -> int:
    """Run the command line. Exit codes: 0 success; 2 a user error (bad config key or value,
    missing or malformed data, unsafe or foreign checkpoint: one line naming the key or file);
    1 a failed write (disk full, permissions); 130 / 143 training interrupted by SIGINT /
    SIGTERM (a resumable checkpoint was written). ``--debug`` or ``VIDREID_DEBUG=1`` shows the
    traceback instead."""
    import os

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("VIDREID_DEBUG") == "1" or "--debug" in argv
    argv = [x for x in argv if x != "--debug"]
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except TrainingInterrupted as e:
        if debug:
            raise
        cfg = getattr(args, "config", None)
        print(f"vidreid {args.cmd}: {_one_line(e)}; resume with: vidreid train --config {cfg} --resume {e.checkpoint}"
              + (" " + " ".join(args.overrides) if getattr(args, "overrides", None) else ""), file=sys.stderr)
        return e.exit_code
    except VidReIDError as e:
        if debug:
            raise
        print(f"vidreid {args.cmd}: error: {_one_line(e)}", file=sys.stderr)
        return 1 if isinstance(e, WriteError) else 2
    except OSError as e:
        if debug:
            raise
        where = f" {e.filename}" if getattr(e, "filename", None) else ""
        print(f"vidreid {args.cmd}: error:{where} {e.strerror or _one_line(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"vidreid {args.cmd}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
