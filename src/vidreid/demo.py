"""The main job (``vidreid demo``, what ``make demo`` runs).

1. Generate the default synthetic benchmark: PRID-2011 layout, the ``prid2011`` preset (200
   two-camera people, the real split file's 178 in 10 splits of 89/89), 128x64 crops.
2. Train the baseline (EfficientNet-Lite0, ImageNet init, temporal average pooling, BN-neck,
   CE + triplet, distillation towards the ImageNet model, colour / greyscale / blur augmentation;
   the frozen ImageNet feature appended to the test embedding: ``demo/prid2011.yaml``) on split 0
   on the CPU.
3. Evaluate it on split 0's test people (query cam_a, gallery cam_b), beside a no-training
   reference (ImageNet features, same protocol).
4. If the PETS 2009 folder exists ($VIDREID_PETS or ../shared/data/pets2009_s2l1), crop its
   real tracks and evaluate both models on its two protocols.
5. Print one table and write it to ``OUT/results.md`` (and ``OUT/results.json``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from omegaconf import OmegaConf

from .config import load_config
from .data.datasets import FolderDataset
from .data.datasets.pets import prepare_pets2009
from .synth import GENERATOR_VERSION, generate
from .engine.cpu import usable_cores
from .engine.evaluator import evaluate_split, format_table, pick_device
from .engine.trainer import Trainer
from .errors import DatasetError
from .fileio import atomic_write_json, atomic_write_text
from .models import create_model

DEMO_LAYOUT, DEMO_PRESET, DEMO_SEED = "prid2011", "prid2011", 0
PETS_FRAMES = 32


def _ensure_synthetic(root: Path) -> None:
    man = root / "synth_manifest.json"
    if man.is_file():
        m = json.loads(man.read_text())
        if (m.get("layout"), m.get("preset"), m.get("seed"), m.get("generator_version")) == (
                DEMO_LAYOUT, DEMO_PRESET, DEMO_SEED, GENERATOR_VERSION):
            print(f"[demo] reusing synthetic benchmark at {root}")
            return
        # never delete a folder: it may hold files we did not write
        raise DatasetError(f"{root} holds a synthetic benchmark of another generator version or preset "
                           f"({m.get('layout')}/{m.get('preset')}, seed {m.get('seed')}, version "
                           f"{m.get('generator_version')}; the demo needs {DEMO_LAYOUT}/{DEMO_PRESET}, seed {DEMO_SEED}, "
                           f"version {GENERATOR_VERSION}); delete it yourself or choose another --out")
    elif root.exists() and any(root.iterdir()):
        raise DatasetError(f"{root} exists and is not a demo benchmark (no synth_manifest.json); the demo writes "
                           "nothing into a folder it did not create: choose another --out")
    print(f"[demo] generating the synthetic PRID-like benchmark into {root}")
    generate(DEMO_LAYOUT, DEMO_PRESET, root, seed=DEMO_SEED, progress=True)


def _trained_label(cfg, where: str = "trained") -> str:
    """The trained row's model name with the guards against forgetting its recipe uses (issue 24),
    read off the config: e.g. ``baseline (trained; distillation, appearance augmentation, ImageNet anchor)``."""
    a = cfg.data.augment
    guards = [name for name, on in (
        ("distillation", cfg.train.distill_weight > 0),
        ("appearance augmentation", max(a.color_p, a.gray_p, a.blur_p) > 0),
        ("ImageNet anchor", float(cfg.model.args.get("pretrained_anchor", 0) or 0) > 0)) if on]
    return f"baseline ({where}; {', '.join(guards)})" if guards else f"baseline ({where})"


def _pets_src(pets: str | None) -> Path | None:
    """The first folder holding the PETS ground truth (PETS2009-S2L1.xml) whose video is there or
    where Debian's opencv-doc installs it (the identities ship with the package)."""
    from .data.datasets.pets import find_video

    for c in (pets, os.environ.get("VIDREID_PETS"), "../shared/data/pets2009_s2l1"):
        if c and (Path(c) / "PETS2009-S2L1.xml").is_file() and find_video(Path(c)) is not None:
            return Path(c)
    return None


def run_demo(out: str | Path = "outputs/demo", pets: str | None = None) -> list[dict]:
    t_start = time.perf_counter()
    out = Path(out)
    data_root = out / "data" / "prid2011"
    _ensure_synthetic(data_root)
    t_data = time.perf_counter() - t_start
    # train.num_threads=-1: one torch thread per core other processes leave idle (engine/cpu.py): on 2
    # shared cores torch's one-per-core default trained 6.7x slower, one thread 1.55x (bench_threads.py)
    cfg = load_config("demo/prid2011", [f"data.root={data_root}", f"train.output_dir={out / 'baseline'}",
                                        "train.num_threads=-1"])
    dev = pick_device(cfg.train.device)
    t0 = time.perf_counter()
    trainer = Trainer(cfg)
    n_gallery_ids = len({t.pid for t in trainer.split.gallery})
    print(f"[demo] training {cfg.model.name} ({cfg.model.args.backbone}) on split 0: "
          f"{len(trainer.split.train)} tracklets, {len(trainer.labels)} ids, {cfg.schedule.epochs} epochs")
    trained = trainer.fit(overwrite=True)  # the demo's own run folder: a second `make demo` replaces it
    t_train = time.perf_counter() - t0  # training and the trained model's evaluation
    t0 = time.perf_counter()
    model = trainer.model
    ref_cfg = load_config("reference/imagenet_lite0", [f"data.root={data_root}"])
    ref = create_model(ref_cfg.model.name, 0, **ref_cfg.model.args)
    rows = []
    synth_proto = "split 0 of 10 (cam_a -> cam_b)"
    rows.append(dict(trained, dataset="synthetic PRID-like", protocol=synth_proto, model=_trained_label(cfg)))
    r = evaluate_split(ref, trainer.split, ref_cfg, dev)
    rows.append(dict(r, dataset="synthetic PRID-like", protocol=synth_proto, model="ImageNet reference (no training)"))
    t_ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    src = _pets_src(pets)
    pets_q: list[tuple[str, int]] = []
    if src is not None:
        pets_out = out / "data" / "pets2009"
        if not (pets_out / "pets2009_prepare.json").is_file():
            print(f"[demo] cropping real PETS 2009 tracks from {src}")
            prepare_pets2009(src, pets_out)
        # PETS tracklets are long (83-572 frames): 32 frames evenly spaced per tracklet keep the
        # demo inside its budget; `vidreid test` evaluates them with all frames.
        pets_ov = ["data.test_sampling.strategy=evenly", f"data.test_sampling.seq_len={PETS_FRAMES}"]
        for proto, label in (("reentry", "re-entry linking"), ("split", "split tracks")):
            split = FolderDataset(pets_out / proto).split(0)
            pets_q.append((label, len(split.query)))
            for m, c, name in ((model, cfg, _trained_label(cfg, "trained on synthetic")), (ref, ref_cfg, "ImageNet reference (no training)")):
                c = OmegaConf.merge(c, OmegaConf.from_dotlist(pets_ov))
                rows.append(dict(evaluate_split(m, split, c, dev), dataset="PETS 2009 S2.L1 (real)",
                                 protocol=f"{label}, {PETS_FRAMES} frames/tracklet", model=name))
    else:
        from .data.datasets.pets import FETCH

        print("[demo] real-footage rows skipped: no PETS 2009 folder (--pets DIR, $VIDREID_PETS or "
              f"../shared/data/pets2009_s2l1). {FETCH}; put them in one folder and run `vidreid demo --pets DIR`.")
    t_pets = time.perf_counter() - t0
    total = time.perf_counter() - t_start
    chance = 1.0 / n_gallery_ids
    table = format_table(rows)
    text = "\n".join([
        "# vidreid demo results", "",
        table, "",
        f"Rank-k and mAP in %. Chance rank-1 on the synthetic test split: {100 * chance:.1f}% "
        f"(1 / {n_gallery_ids} gallery identities).",
        f"Wall time: {total:.0f} s on {usable_cores()} CPU cores, device {dev}: synthetic data {t_data:.0f} s "
        f"(generated once, then reused), training + its evaluation {t_train:.0f} s, ImageNet reference evaluation "
        f"{t_ref:.0f} s, PETS 2009 (crop + 4 evaluations) {t_pets:.0f} s, other {total - t_data - t_train - t_ref - t_pets:.0f} s "
        "(start-up, model building).",
        f"Torch threads: {trainer.num_threads} (train.num_threads=-1: one per core other processes left idle "
        "when training started; another count changes the last digits and then the numbers, docs/RESULTS.md).",
        f"Load average when it ended (1 / 5 / 15 min): {' / '.join(f'{x:.1f}' for x in os.getloadavg())}"
        + (" (above the core count: the cores were shared with other work)."
           if os.getloadavg()[1] > (os.cpu_count() or 1) + 0.5 else "."),
        "Synthetic benchmark: layout prid2011, preset prid2011, seed 0 (vidreid synth). "
        "PETS protocols: docs/datasets.md (PETS 2009 S2.L1) and vidreid.data.datasets.pets.",
    ] + ([f"PETS rows: {', '.join(f'{n} queries ({lab}: one query = {100 / n:.2f} rank-1 points)' for lab, n in pets_q)}; "
          "a difference of one or two queries is within what another seed gives (docs/RESULTS.md)."] if pets_q else []))
    print("\n" + text)
    atomic_write_text(out / "results.md", text + "\n")
    atomic_write_json(out / "results.json", {"rows": rows, "wall_time_s": total, "chance_rank1": chance})
    return rows
