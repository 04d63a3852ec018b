"""The ``vidreid`` command line: one entry point, subcommands.

    vidreid synth   --layout LAYOUT (a video or image benchmark) --preset NAME --out DIR [--seed N]
    vidreid stats   --dataset NAME --root DIR [--no-verify-files] [--split-id N] [--mars-gallery all_test|exclude_query]
    vidreid train   --config FILE [--resume CKPT] [key=value ...]   (--config optional with --resume)
    vidreid test    [--config FILE] [--checkpoint CKPT] [--out DIR] [--rerank] [--visrank K] [key=value ...]
    vidreid flow    --dataset NAME --root DIR --method {tvl1,farneback,lk} [--workers N]
    vidreid prepare pets2009 (--src DIR | --video V --annotations XML) [--identities CSV] --out DIR
    vidreid visualize {attention,features} --config FILE [--checkpoint CKPT] --tracklet DIR [--out PNG]
    vidreid demo    [--out DIR]
    vidreid tracklets --video V.mp4 | --frames DIR  --tracks T.txt --out DIR [--camera NAME] [filters]
    vidreid embed   --checkpoint C --tracklets DIR --out E.npz
    vidreid match   --checkpoint C --query DIR|E.npz --gallery DIR|E.npz --out DIR [--assign [--threshold D]] [--index KIND]
    vidreid adapt   --checkpoint C --tracklets DIR --out RUN [key=value ...]
    vidreid export  --checkpoint C --format onnx --out model.onnx [--seq-len T]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import ConfigError, DatasetError, TrainingInterrupted, VidReIDError
from .fileio import WriteError


def _cmd_synth(a) -> int:
    import dataclasses

    import yaml

    from .synth import Preset, generate

    fields = {f.name for f in dataclasses.fields(Preset)}
    overrides = {}
    for item in a.set:
        key, sep, val = item.partition("=")
        if not sep or key not in fields:
            raise ConfigError(f"--set {item!r}: expected FIELD=VALUE with FIELD one of {sorted(fields)}")
        try:
            v = yaml.safe_load(val)
        except yaml.YAMLError:
            v = None  # e.g. a !!python tag: the safe loader refuses it
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


def config_for(a, checkpoint: str | dict | None, extra: list[str] | None = None):
    """The run's configuration: ``--config`` with the overrides, or, without ``--config``, the
    configuration stored in ``checkpoint`` (a path, or a checkpoint already loaded) with the
    overrides on top.

    Raises:
        ConfigError: neither a config nor a checkpoint; CheckpointError: an unreadable checkpoint.
    """
    from .config import apply_overrides, from_container, load_config

    overrides = (list(getattr(a, "overrides", []) or []) + list(extra or [])
                 + ([f"data.root={a.root}"] if getattr(a, "root", None) else []))
    if a.config:
        return load_config(a.config, overrides)
    if not checkpoint:
        raise ConfigError("give --config FILE (or --checkpoint / --resume with a checkpoint, which carries its config)")
    from .engine.checkpoint import load_checkpoint

    from .engine.checkpoint import CheckpointError

    st = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    name = getattr(a, "checkpoint", None) or getattr(a, "resume", None) or "the checkpoint"
    try:
        base = from_container(st["config"])
    except (ValueError, KeyError, TypeError, AttributeError) as e:  # OmegaConf's validation and key errors
        raise CheckpointError(f"checkpoint {name}: its config is not a vidreid config "
                              f"({' '.join(str(e).split())[:200]})") from None
    return apply_overrides(base, overrides)


def _model_and_config(a, extra: list[str] | None = None):
    """(model, config, checkpoint dict or None) for ``test`` / ``visualize``: the checkpoint is
    read once, for its weights and (without ``--config``) its config; without ``--checkpoint``
    the config's untrained model."""
    from .engine.checkpoint import load_checkpoint
    from .engine.trainer import load_model_from_checkpoint
    from .models import create_model

    ck = a.checkpoint
    if ck and (str(ck).startswith("torchreid:") or is_config_name(ck)):
        # --checkpoint takes what embed / match / export take (api.load): a config name or torchreid:ARCH
        if getattr(a, "config", None):
            raise ConfigError(f"--checkpoint {ck} is a model source itself; leave out --config {a.config}")
        from .api import load

        m = load(ck, weights=getattr(a, "weights", None),
                 overrides=[*(a.overrides or []), *(extra or []), *([f"data.root={a.root}"] if getattr(a, "root", None) else [])])
        return m.model, m.cfg, None
    st = load_checkpoint(ck) if ck else None
    cfg = config_for(a, st, extra)
    if st is None:
        return create_model(cfg.model.name, num_classes=0, **cfg.model.args), cfg, None
    model, _, st = load_model_from_checkpoint(st, source=a.checkpoint)
    return model, cfg, st


def is_config_name(source) -> bool:
    """Whether a ``--checkpoint`` value names a config rather than a checkpoint file: a YAML
    path, or a packaged config name (``reference/imagenet_lite0``) that is not an existing file."""
    from .config import packaged_config_dir

    p = Path(str(source))
    if p.suffix in (".yaml", ".yml"):
        return True
    return not p.exists() and p.suffix not in (".pt", ".pth", ".ckpt") and \
        (packaged_config_dir() / f"{source}.yaml").is_file()


def split_label(split_id: int, num_splits: int) -> str:
    """How a result table names its protocol: "split 0 of 10" (one split of a 10-split protocol,
    not comparable to the papers' means), or "single split" (MARS, DukeV, folder)."""
    return f"split {split_id} of {num_splits}" if num_splits > 1 else "single split"


def _cmd_train(a) -> int:
    from .engine.distributed import init_from_env, shutdown

    cfg = config_for(a, a.resume, ["train.overwrite=true"] if a.overwrite else [])
    rank, _ = init_from_env()  # several processes under torchrun (engine/distributed.py); else a no-op
    try:
        return _train(a, cfg, rank)
    finally:
        shutdown()  # leave the process group before exit, on success and on error alike


def _train(a, cfg, rank: int) -> int:
    from .engine.evaluator import format_table, headline
    from .engine.trainer import Trainer, train_all_splits

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
    say(format_table([row] + [dict(r, model=cfg.model.name) for r in row.get("extra", [])]))
    say(headline(row, cfg))
    say(f"metrics: {Path(cfg.train.output_dir) / 'metrics.json'}")
    return 0


def _cmd_test(a) -> int:
    from .data.datasets import build_dataset_from_config
    from .engine.evaluator import evaluate_extra, evaluate_split, format_table, headline, pick_device, summarize, write_json
    from .engine.reports import plot_cmc, write_visrank
    from .engine.trainer import check_train_test_overlap

    from .fileio import refuse_existing

    model, cfg, st = _model_and_config(a, ["test.rerank=true"] if a.rerank else [])
    out_dir = Path(a.out or Path(cfg.train.output_dir) / "test")
    refuse_existing([out_dir / "metrics.json", out_dir / "cmc.png"], a.overwrite, "an earlier test's")
    if a.visrank > 0 and (out_dir / "visrank").exists() and not a.overwrite:
        raise ConfigError(f"{out_dir / 'visrank'} already exists (an earlier --visrank); pass --overwrite or another --out")
    thumbs = None
    if a.report:
        from .report import start_report

        thumbs = start_report(out_dir, a.overwrite)
    report_queries = None
    ds = build_dataset_from_config(cfg.data)
    splits = list(range(ds.num_splits)) if cfg.data.split_id == "all" else [int(cfg.data.split_id)]
    dev = pick_device(cfg.train.device)
    per = []
    for s in splits:
        split = ds.split(s)
        if st is not None:
            check_train_test_overlap(st, split, cfg.test.allow_train_overlap)
        r = evaluate_split(model, split, cfg, dev, progress=cfg.train.progress, keep=a.visrank > 0 or a.report)
        if a.visrank > 0:
            vis = write_visrank(split, r["_distmat"], out_dir / "visrank" / f"split_{s}", topk=a.visrank,
                                height=cfg.data.height, width=cfg.data.width, max_queries=a.visrank_queries)
            print(f"visrank: {len(vis)} images in {vis[0].parent}")
        if a.report and report_queries is None:  # the page shows the first split tested
            from .report import build_queries_from_distances

            def columns(ts, root=split.root):  # names, cameras, pids, frame paths
                return ([t.name or "/".join(Path(t.frames[0]).parts[:-1]) for t in ts], [t.camid for t in ts],
                        [t.pid for t in ts], [[root / f for f in t.frames] for t in ts])

            report_queries = (s, build_queries_from_distances(r["_distmat"], *columns(split.query),
                                                              *columns(split.gallery), thumbs, topk=a.report_topk))
        r.pop("_distmat", None)
        per.append(r)
    name = cfg.model.name + (" + re-ranking" if cfg.test.rerank else "") + (" (pairwise)" if cfg.test.mode == "pairwise" else "")
    extra = [dict(r, model=name) for r in evaluate_extra(model, cfg, dev)] if cfg.test.extra else []
    res = {"per_split": per, "summary": summarize(per), "dataset": cfg.data.dataset, "model": name,
           "checkpoint": a.checkpoint, "headline_map": cfg.test.headline_map, "extra": extra}
    # the table first: a failed write (e.g. a full disk) must not lose the numbers
    if len(per) > 1:
        print(format_table([dict(r, dataset=cfg.data.dataset, model=name, protocol=split_label(r["split_id"], ds.num_splits))
                            for r in per], title="per split"))
        print()
    row = dict(res["summary"], dataset=cfg.data.dataset, model=name,
               protocol=f"mean ± std of {len(splits)} splits" if len(splits) > 1 else split_label(splits[0], ds.num_splits))
    print(format_table([row] + extra))
    print(headline(res["summary"], cfg), flush=True)
    write_json(res, out_dir / "metrics.json")
    png = plot_cmc(per, out_dir / "cmc.png", title=f"{cfg.data.dataset}: {name}")
    print(f"metrics: {out_dir / 'metrics.json'}; CMC curve: {png}")
    if a.report:
        from .report import write_report

        s, qs = report_queries
        r = per[splits.index(s)]
        summ = {k: r[k] for k in ("rank1", "rank5", "rank10", "rank20", "mAP", "mAP_trapezoid", "mINP") if k in r}
        summ.update(valid_queries=r.get("num_valid_queries"), skipped_queries=r.get("num_skipped_queries"))
        page = write_report(out_dir, qs, f"{cfg.data.dataset} ({split_label(s, ds.num_splits)}): {name}", summ,
                            cmc=r.get("cmc"), thumbs=thumbs,
                            notes=[f"checkpoint: {a.checkpoint or 'untrained ' + cfg.model.name}",
                                   f"{len(qs)} queries, top {a.report_topk} each; gallery items of the query's pid and "
                                   "camera are left out (the protocol's junk)"])
        print(f"report: {page}")
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

    print(json.dumps(prepare_pets2009(a.src, a.out, video=a.video, annotations=a.annotations, identities=a.identities),
                     indent=1))
    return 0


def _cmd_demo(a) -> int:
    from .demo import run_demo

    run_demo(a.out, pets=a.pets)
    return 0


def _cmd_visualize(a) -> int:
    from .engine.visualize import visualize

    from .fileio import refuse_existing

    model, cfg, _ = _model_and_config(a)
    out = Path(a.out or Path(cfg.train.output_dir) / f"visualize_{a.kind}.png")
    refuse_existing(out, a.overwrite, "--out")
    try:
        path, info = visualize(a.kind, model, cfg, a.tracklet, out)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    for k, v in info.items():  # the numbers behind the figure (features: ||M_t - M_t-1|| / ||M_t-1||)
        print(f"{k}: {v}")
    print(f"{a.kind}: {path}")
    return 0


def _cmd_tracklets(a) -> int:
    from .inference.tracks import TrackFilter, video_to_tracklets

    ids = None
    if a.identities:
        from .data.datasets.pets import read_identities

        ids = read_identities(Path(a.identities))
    flt = TrackFilter(min_length=a.min_length, min_height=a.min_height, min_width=a.min_width, min_conf=a.min_conf,
                      min_visibility=a.min_visibility, classes=tuple(a.classes) if a.classes else None, every=a.every)
    rep = video_to_tracklets(a.tracks, a.out, camera=a.camera, video=a.video, frames=a.frames, flt=flt,
                             identities=ids, progress=not a.quiet)
    print(json.dumps(rep, indent=1))
    if "note" in rep:
        print(f"vidreid tracklets: note: {rep['note']}", file=sys.stderr)
    return 0


def _embeddings_of(model, path: str, what: str, batch_size=None, drop_nonfinite: bool = False):
    """An embeddings file as it is, or a tracklet folder embedded with ``model``."""
    from .inference.match import Embeddings, embed_tracklet_folder

    p = Path(path)
    if p.suffix == ".npz":
        e = Embeddings.load(p, drop_nonfinite=drop_nonfinite)
        if e.meta.get("dropped_nonfinite"):
            print(f"vidreid match: --{what} {p}: left out {e.meta['dropped_nonfinite']} embeddings with NaN or infinite "
                  "values (--drop-nonfinite)", file=sys.stderr)
        return e
    if model is None:
        raise ConfigError(f"--{what} {p}: a tracklet folder needs --checkpoint (or give an embeddings .npz)")
    return embed_tracklet_folder(model, p, batch_size)


def _load_api_model(a):
    from .api import load

    if getattr(a, "weights", None) and not str(a.checkpoint).startswith("torchreid:") and \
            not Path(a.checkpoint).suffix in (".yaml", ".yml") and Path(a.checkpoint).is_file():
        raise ConfigError("--weights goes with --checkpoint torchreid:ARCH or a config name, not with a vidreid "
                          "checkpoint (it has its own weights)")
    return load(a.checkpoint, weights=getattr(a, "weights", None), device=a.device,
                overrides=list(getattr(a, "overrides", []) or []))


def _cmd_embed(a) -> int:
    from .fileio import refuse_existing
    from .inference.match import embed_tracklet_folder

    refuse_existing(a.out, a.overwrite, "--out")
    if Path(a.out).suffix != ".npz":
        raise ConfigError(f"--out {a.out}: an embeddings file ends in .npz")
    model = _load_api_model(a)
    e = embed_tracklet_folder(model, Path(a.tracklets), a.batch_size)
    path = e.save(a.out)
    cams = sorted(set(e.cameras))
    print(f"embeddings: {len(e)} tracklets x {e.embeddings.shape[1]} ({len(cams)} camera(s): {', '.join(cams[:8])}) -> {path}")
    return 0


def _cmd_match(a) -> int:
    from .inference.match import (assign_identities, assignment_scores, known_pid_metrics, ranked_lists,
                                  write_assignment, write_rankings)

    from .fileio import refuse_existing

    out = Path(a.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder for ranking.csv, ranking.json, match.json")
    refuse_existing([out / n for n in ("ranking.csv", "ranking.json", "match.json", "assignment.csv")], a.overwrite,
                    "an earlier match's")
    thumbs = None
    if a.report:
        from .report import start_report

        thumbs = start_report(out, a.overwrite)
    if a.topk < 1:
        raise ConfigError(f"--topk must be >= 1, got {a.topk}")
    if a.threshold is not None and not (a.threshold >= 0 and a.threshold < float("inf")):
        raise ConfigError(f"--threshold must be a finite distance >= 0, got {a.threshold}")
    model = _load_api_model(a) if a.checkpoint else None
    q = _embeddings_of(model, a.query, "query", a.batch_size, a.drop_nonfinite)
    g = q if a.gallery is None else _embeddings_of(model, a.gallery, "gallery", a.batch_size, a.drop_nonfinite)
    for what, e in (("--query", q), ("--gallery", g)):
        if len(e) == 0:
            raise DatasetError(f"{what} {a.query if what == '--query' else a.gallery}: no tracklets to match")
    if q.embeddings.shape[1] != g.embeddings.shape[1]:
        raise ConfigError(f"--query {a.query} has {q.embeddings.shape[1]}-d embeddings and --gallery {a.gallery} "
                          f"{g.embeddings.shape[1]}-d: embed both with the same model")
    metric = a.metric or (model.metric if model is not None else q.meta.get("metric", "euclidean"))
    lists = ranked_lists(q, g, metric, a.topk, cross_camera=a.cross_camera, index=a.index)
    csv_p, _ = write_rankings(lists, a.out)
    print(f"rankings: {len(lists)} queries x top {a.topk} ({metric}{', index ' + a.index if a.index else ''}) -> {csv_p}")
    res = {"queries": len(lists), "metric": metric}
    known = (q.pids >= 0).any() and (g.pids >= 0).any()
    r = known_pid_metrics(q, g, metric, cross_camera=a.cross_camera)
    if r is not None:
        res.update(r)
        print(f"with the known pids: rank-1 {100 * r['rank1']:.1f}, mAP {100 * r['mAP']:.1f} "
              f"(trapezoid {100 * r['mAP_trapezoid']:.1f}) "
              f"({r['valid_queries']} queries with a match, {r['skipped_queries']} without)")
    elif known:
        print("with the known pids: no query has a match in the gallery (other than itself); no rank-1 / mAP")
    ident_all = None
    if a.assign:
        from .inference.match import assignment_distances, auto_threshold, known_different

        allt = q if a.gallery is None else q.concat(g)
        D, how = assignment_distances(allt, metric, rerank=a.assign_distance == "rerank")
        thr = a.threshold
        if thr is None:
            try:
                thr, stats = auto_threshold(D, known_different(allt, a.groups))
            except ValueError as e:
                raise ConfigError(f"--assign: {e}") from None
            how.update(threshold=thr, threshold_from="median of the known-different pairs", **stats)
            p5, p25, p50, p75, p95 = stats["percentiles_5_25_50_75_95"]
            print(f"assignment threshold {thr:.4f} ({how['distance']}): the median distance of "
                  f"{stats['known_different_pairs']} pairs known to be different people (same camera"
                  f"{'' if a.groups == 'camera' else ', overlapping in time'}); their percentiles 5/25/50/75/95: "
                  f"{p5:.3f} {p25:.3f} {p50:.3f} {p75:.3f} {p95:.3f} (--threshold overrides)")
        else:
            how.update(threshold=thr, threshold_from="--threshold")
        ident = assign_identities(allt, thr, metric, groups=a.groups, distances=D)
        p = write_assignment(allt, ident, a.out)
        print(f"assignment: {len(allt)} tracklets -> {len(set(ident.tolist()))} identities -> {p}")
        res["assignment_distance"] = how
        ident_all = (allt, ident)
        res["identities"] = int(len(set(ident.tolist())))
        if (allt.pids >= 0).any():
            sc = assignment_scores(ident, allt.pids)
            res["assignment"] = sc
            print(f"with the known pids: {sc['people']} people, pair precision {sc['pair_precision']:.3f}, "
                  f"recall {sc['pair_recall']:.3f}, F1 {sc['pair_f1']:.3f}, purity {sc['purity']:.3f}")
    from .fileio import atomic_write_json

    atomic_write_json(Path(a.out) / "match.json", res)
    if a.report:
        _match_report(a, out, q, g, lists, res, ident_all, thumbs)
    return 0


def _match_report(a, out: Path, q, g, lists, res: dict, ident_all, thumbs) -> None:
    """report.html for ``vidreid match --report``: frames from each embeddings file's tracklet folder."""
    from .data.datasets.tracklets import ordered_images
    import numpy as np

    from .report import build_queries_from_lists, identities_rows, write_report

    def frames_of(e, given):
        root = Path(given) if Path(given).is_dir() else Path(e.meta.get("tracklets_root", "") or "/nonexistent")

        def get(name):
            d = root / name
            return [p for _, p in ordered_images(d)] if d.is_dir() else []
        return get

    qf, gf = frames_of(q, a.query), frames_of(g, a.gallery or a.query)
    gp, gnames, gcams = g.pids, np.array(g.names), np.array(g.cameras)

    def has_match(i):
        if q.pids[i] < 0 or not (gp >= 0).any():
            return None
        ok = (gp == q.pids[i]) & (gnames != q.names[i])
        if a.cross_camera:
            ok &= gcams != q.cameras[i]
        return bool(ok.any())

    qs = build_queries_from_lists(lists, qf, gf, has_match, thumbs)
    ids = None
    notes = [f"query: {a.query}; gallery: {a.gallery or a.query} (itself)", f"distance: {res['metric']}"]
    if ident_all is not None:
        allt, ident = ident_all
        both = lambda n: qf(n) or gf(n)  # noqa: E731
        ids = identities_rows(allt.names, allt.cameras, allt.pids, ident, both, thumbs)
        h = res["assignment_distance"]
        notes.append(f"assignment: {len(ids)} identities at threshold {h['threshold']:.4f} ({h['distance']}; "
                     f"{h['threshold_from']})")
    summ = {k: res[k] for k in ("rank1", "rank5", "mAP", "mAP_trapezoid") if k in res}
    if "assignment" in res:
        summ.update({f"assignment {k}": v for k, v in res["assignment"].items()})
    page = write_report(out, qs, f"vidreid match: {len(qs)} queries", summ, thumbs=thumbs, identities=ids, notes=notes)
    print(f"report: {page}")


def _cmd_adapt(a) -> int:
    from .engine.adapt import adapt
    from .engine.evaluator import format_table

    res = adapt(a.checkpoint, a.tracklets, a.out, list(a.overrides or []), overwrite=a.overwrite)
    if res.get("extra"):
        print(format_table(res["extra"]))
    print(f"adapted model: {Path(a.out) / 'checkpoint.pt'} (use it with embed / match --checkpoint)")
    return 0


def _cmd_export(a) -> int:
    from .fileio import refuse_existing
    from .inference.export import export_onnx, export_openvino, preprocessing_spec

    outs = [Path(a.out)] if a.format == "onnx" else [Path(a.out), Path(a.out).with_suffix(".bin")]
    if a.format == "openvino" and Path(a.out).suffix != ".xml":
        raise ConfigError(f"--out {a.out}: OpenVINO IR is a .xml file (with its .bin beside it)")
    refuse_existing(outs, a.overwrite, "--out")
    if a.seq_len is not None and a.seq_len < 1:
        raise ConfigError(f"--seq-len must be >= 1, got {a.seq_len}")
    if a.opset < 7:
        raise ConfigError(f"--opset must be >= 7, got {a.opset}")
    model = _load_api_model(a)
    c = model.cfg
    t = a.seq_len or int(c.data.test_sampling.seq_len)
    spec = preprocessing_spec(model.model, c, uint8_input=a.uint8_input, checkpoint=str(a.checkpoint))
    kw = dict(seq_len=t, flow=bool(c.data.flow), opset=a.opset, exporter=a.exporter, spec=spec, uint8_input=a.uint8_input)
    if a.format == "onnx":
        rep = export_onnx(model.model, a.out, int(c.data.height), int(c.data.width), **kw)
    else:
        rep = export_openvino(model.model, a.out, int(c.data.height), int(c.data.width), **kw)
    print(json.dumps(rep, indent=1))
    if rep["why_fixed"]:
        print(f"note: {rep['why_fixed']}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .data.names import DATASET_NAMES as DATASETS, SYNTH_LAYOUTS as LAYOUTS

    p = argparse.ArgumentParser(prog="vidreid", description="Video-based person re-identification.")
    p.add_argument("--version", action="version", version=f"vidreid {__version__}")
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
    s.add_argument("--config", default=None, help="a packaged config name (e.g. baseline/prid2011) or a YAML path; "
                                                  "optional with --resume (the checkpoint carries its config)")
    s.add_argument("--resume", default=None, help="checkpoint to continue from")
    s.add_argument("--allow-changes", action="store_true",
                   help="with --resume: apply settings that differ from the checkpoint's (else an error listing them)")
    s.add_argument("--overwrite", action="store_true", help="replace a run already in train.output_dir")
    s.add_argument("--root", default=None, help="the dataset root (the same as data.root=...)")
    s.add_argument("overrides", nargs="*", help="key=value")
    s.set_defaults(fn=_cmd_train)

    s = sub.add_parser("test", help="evaluate a checkpoint (or an untrained model) on a dataset's protocol")
    s.add_argument("--config", default=None, help="optional with --checkpoint (the checkpoint carries its config)")
    s.add_argument("--checkpoint", default=None,
                   help="a checkpoint written by vidreid train, a config name (e.g. reference/imagenet_lite0), or "
                        "torchreid:ARCH with --weights (as embed / match / export)")
    s.add_argument("--weights", default=None, help="with torchreid:ARCH or a config name: the weights file")
    s.add_argument("--root", default=None, help="the dataset root (the same as data.root=...)")
    s.add_argument("--out", default=None)
    s.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (test.rerank=true)")
    s.add_argument("--visrank", type=int, default=0, metavar="K", help="write each query's top-K ranking as an image")
    s.add_argument("--visrank-queries", type=int, default=None, help="only the first N queries")
    s.add_argument("--report", action="store_true",
                   help="write report.html (ranked lists with thumbnails, metrics, CMC) and report_files/ to --out")
    s.add_argument("--report-topk", type=int, default=10, help="gallery tracklets per query in the report")
    s.add_argument("--overwrite", action="store_true", help="replace an earlier test's files in --out")
    s.add_argument("overrides", nargs="*", help="key=value")
    s.set_defaults(fn=_cmd_test)

    s = sub.add_parser("visualize", help="look inside a model on one tracklet folder (attention maps, feature maps)")
    vs = s.add_subparsers(dest="kind", required=True)
    for kind, text in (("attention", "STAN receptive fields and temporal weights (Li et al. 2018, Fig. 3)"),
                       ("features", "raw vs refined feature-map responses (RRU, Liu et al. 2019, Fig. 3)")):
        v = vs.add_parser(kind, help=text)
        v.add_argument("--config", default=None, help="optional with --checkpoint")
        v.add_argument("--checkpoint", default=None,
                       help="a checkpoint written by vidreid train or a config name (e.g. reference/imagenet_lite0); "
                            "default: the config's untrained model")
        v.add_argument("--tracklet", required=True, help="a folder of one tracklet's frame images")
        v.add_argument("--out", default=None, help="PNG path (default: <output_dir>/visualize_<kind>.png)")
        v.add_argument("--overwrite", action="store_true", help="replace an existing --out")
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
    pp.add_argument("--src", default=None, help="a folder holding PETS2009-S2L1.xml and vtest.avi (the video may also "
                                               "be where Debian's opencv-doc installs it)")
    pp.add_argument("--video", default=None, help="vtest.avi (OpenCV's sample data), if not in --src")
    pp.add_argument("--annotations", default=None, help="PETS2009-S2L1.xml (OpenTraj), if not in --src")
    pp.add_argument("--identities", default=None, help="a track_id,person_id CSV replacing the table that ships "
                                                      "with vidreid")
    pp.add_argument("--out", required=True)
    pp.set_defaults(fn=_cmd_prepare)

    s = sub.add_parser("tracklets", help="crop a video's (or image sequence's) MOT-format tracks into tracklet folders")
    src = s.add_mutually_exclusive_group(required=True)
    src.add_argument("--video", help="a video file OpenCV can decode")
    src.add_argument("--frames", help="an image-sequence folder (file names end in the 1-based frame number)")
    s.add_argument("--tracks", required=True, help="MOT text file: frame,id,left,top,width,height[,conf,class,visibility]")
    s.add_argument("--out", required=True, help="output folder (several cameras may share it)")
    s.add_argument("--camera", default="cam1", help="this video's camera name (default cam1)")
    s.add_argument("--min-length", type=int, default=2, help="drop tracks with fewer kept boxes (default 2)")
    s.add_argument("--min-height", type=float, default=0.0, help="drop boxes lower than this, pixels (after clipping)")
    s.add_argument("--min-width", type=float, default=0.0, help="drop boxes narrower than this, pixels")
    s.add_argument("--min-conf", type=float, default=0.0, help="drop boxes with column 7 below this (MOT ground truth: 1)")
    s.add_argument("--min-visibility", type=float, default=0.0, help="drop boxes with column 9 below this")
    s.add_argument("--classes", type=int, nargs="+", default=None, help="keep only these column-8 classes")
    s.add_argument("--every", type=int, default=1, help="keep every N-th box of each track (default 1: all)")
    s.add_argument("--identities", default=None, help="optional CSV track_id,person_id: labelled tracklets")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(fn=_cmd_tracklets)

    def model_args(s, required=True):
        s.add_argument("--checkpoint", required=required,
                       help="a checkpoint written by vidreid train, a config name (e.g. reference/imagenet_lite0), or "
                            "torchreid:ARCH (osnet_x1_0, osnet_ain_x1_0, resnet50, ...) with --weights")
        s.add_argument("--weights", default=None, help="with torchreid:ARCH: a torchreid model-zoo weights file; with a "
                                                       "config name: a state dict")
        s.add_argument("--device", default="auto")
        s.add_argument("--batch-size", type=int, default=None, help="frames per forward pass (default test.batch_size)")
        s.add_argument("--overwrite", action="store_true", help="replace existing output files")
        s.add_argument("overrides", nargs="*", help="key=value settings on top of the checkpoint's config")

    s = sub.add_parser("embed", help="embed every tracklet of a folder into an .npz (names, cameras, embeddings)")
    model_args(s)
    s.add_argument("--tracklets", required=True, help="a folder written by vidreid tracklets, or any folder of tracklet folders")
    s.add_argument("--out", required=True, help="the embeddings file (.npz)")
    s.set_defaults(fn=_cmd_embed)

    s = sub.add_parser("match", help="rank gallery tracklets for every query; optionally assign identities across cameras")
    model_args(s, required=False)
    s.add_argument("--query", required=True, help="a tracklet folder or an embeddings .npz")
    s.add_argument("--gallery", default=None, help="a tracklet folder or an .npz (default: the query set itself)")
    s.add_argument("--out", required=True, help="folder for ranking.csv, ranking.json, match.json (and assignment.csv)")
    s.add_argument("--topk", type=int, default=10)
    s.add_argument("--metric", choices=["euclidean", "cosine"], default=None, help="default: the model's test.distance")
    s.add_argument("--cross-camera", action="store_true", help="list only gallery tracklets of other cameras")
    s.add_argument("--index", choices=["flat", "ivf", "hnsw"], default=None, help="search with a FAISS index")
    s.add_argument("--assign", action="store_true",
                   help="group all tracklets into identities (average-linkage clustering; tracklets known to be "
                        "different people never joined)")
    s.add_argument("--threshold", type=float, default=None,
                   help="with --assign: the largest average distance at which groups join (default: the median "
                        "distance of the pairs known to be different people, printed)")
    s.add_argument("--report", action="store_true",
                   help="write report.html (ranked lists with thumbnails; identities with --assign) and report_files/")
    s.add_argument("--assign-distance", choices=["rerank", "metric"], default="rerank",
                   help="with --assign: k-reciprocal re-ranked cosine distances (default; one scale across models "
                        "and scenes) or --metric's distances as they are")
    s.add_argument("--groups", choices=["camera", "tracklet"], default="camera",
                   help="with --assign: one-to-one between cameras, or tracklet by tracklet (re-entries in one view)")
    s.add_argument("--drop-nonfinite", action="store_true",
                   help="leave out .npz embeddings with NaN or infinite values (counted) instead of refusing the file")
    s.set_defaults(fn=_cmd_match)

    s = sub.add_parser("adapt", help="adapt a model to your cameras' tracklets without labels (TAUDL-style)")
    s.add_argument("--checkpoint", required=True, help="the starting model: a vidreid checkpoint or a config name "
                                                       "(e.g. reference/imagenet_lite0)")
    s.add_argument("--tracklets", required=True, help="the folder vidreid tracklets wrote (cameras, tracks)")
    s.add_argument("--out", required=True, help="the run folder of the adapted model")
    s.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    s.add_argument("overrides", nargs="*", help="key=value (e.g. schedule.epochs=20 test.extra=[...])")
    s.set_defaults(fn=_cmd_adapt)

    s = sub.add_parser("export", help="export a checkpoint's model to ONNX, checked against PyTorch with ONNX Runtime")
    model_args(s)
    s.add_argument("--format", choices=["onnx", "openvino"], default="onnx",
                   help="onnx (checked with ONNX Runtime) or openvino (IR .xml + .bin, needs the openvino package)")
    s.add_argument("--uint8-input", action="store_true",
                   help="the graph takes decoded frames, uint8 RGB (B, T, H, W, 3), and normalises them itself")
    s.add_argument("--out", required=True)
    s.add_argument("--seq-len", type=int, default=None, help="example clip length (default test_sampling.seq_len)")
    s.add_argument("--opset", type=int, default=17)
    s.add_argument("--exporter", choices=["legacy", "dynamo"], default="legacy")
    s.set_defaults(fn=_cmd_export)

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
    traceback instead. A process of a torchrun job ends right after its group is left
    (:func:`vidreid.engine.distributed.end_worker_process`)."""
    code = _main(argv)
    if "vidreid.engine.distributed" in sys.modules:  # not imported (no torch) by --help, --version ...
        from .engine.distributed import end_worker_process

        return end_worker_process(code)
    return code


def _main(argv: list[str] | None) -> int:
    import os

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("VIDREID_DEBUG") == "1" or "--debug" in argv
    argv = [x for x in argv if x != "--debug"]
    parser = build_parser()
    # key=value overrides may come before or after options ("... data.root=X --out Y k=v"):
    # argparse stops the positional list at the first option, so the rest are collected here
    args, rest = parser.parse_known_args(argv)
    if rest:
        if hasattr(args, "overrides") and all("=" in x and not x.startswith("-") for x in rest):
            args.overrides = list(args.overrides or []) + rest
        else:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return args.fn(args)
    except TrainingInterrupted as e:
        if debug:
            raise
        cfg = getattr(args, "config", None)
        print(f"vidreid {args.cmd}: {_one_line(e)}; resume with: vidreid train{f' --config {cfg}' if cfg else ''} --resume {e.checkpoint}"
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
