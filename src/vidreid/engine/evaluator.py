"""Evaluation: query/gallery features -> distances -> CMC / mAP / mINP, per split, and the
mean +- std over the splits of a 10-split protocol."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.flow import FlowCache
from ..data.sampling import TemporalSampler
from ..data.tracklet import ReIDSplit
from ..data.transforms import ClipTransform
from ..inference.features import extract_features
from ..errors import ConfigError, DatasetError, NonFiniteError
from ..fileio import atomic_write_json
from ..inference.pairwise import extract_states, pairwise_distances
from ..metrics.rank import FeatureDistance, evaluate_rank
from ..metrics.rerank import k_reciprocal_rerank
from .distributed import all_gather_object, rank_world

REPORT_RANKS = (1, 5, 10, 20)


def amp_dtype(setting: str, device) -> torch.dtype | None:
    """The autocast dtype of ``train.amp`` (None for ``off``).

    Raises:
        ConfigError: bf16 / fp16 without a GPU (on CPUs bf16 matrix products run hundreds of
            times slower than fp32) or an unknown setting.
    """
    if setting == "off":
        return None
    if setting not in ("bf16", "fp16"):
        raise ConfigError(f"train.amp must be off, bf16 or fp16, got {setting!r}")
    if torch.device(device).type != "cuda":
        raise ConfigError(f"train.amp={setting} needs a GPU (device {device}); on a CPU use train.amp=off")
    return torch.bfloat16 if setting == "bf16" else torch.float16


def autocast(device, dtype):
    """``torch.autocast`` for a dtype from :func:`amp_dtype`, or a no-op for None."""
    import contextlib

    return contextlib.nullcontext() if dtype is None else torch.autocast(torch.device(device).type, dtype=dtype)


def extract_across_ranks(model, root, tracklets, sampler, tf, **kw) -> torch.Tensor:
    """extract_features, shared across the ranks of a process group: rank r extracts tracklets
    r, r + W, ...; the features are gathered and put back in order, identical on every rank."""
    rank, world = rank_world()
    if world <= 1:
        return extract_features(model, root, tracklets, sampler, tf, **kw)
    mine = list(range(rank, len(tracklets), world))
    local = extract_features(model, root, [tracklets[i] for i in mine], sampler, tf, **kw) if mine else None
    parts = all_gather_object((mine, local))
    dim = next(f.shape[1] for _, f in parts if f is not None)
    out = torch.empty(len(tracklets), dim)
    for idx, f in parts:
        if idx:
            out[idx] = f
    return out


def test_sampler(cfg) -> TemporalSampler:
    """The test temporal sampler of a config (``data.test_sampling``). With ``clips:
    as_trained`` the clip length and stride are the training draw's (``data.train_sampling``):
    a 3D CNN is tested on clips as it was trained on them (data/sampling.py ``clip_plan``)."""
    ts = cfg.data.test_sampling
    if ts.clips == "as_trained":
        tr = cfg.data.train_sampling
        return TemporalSampler(ts.strategy, tr.seq_len, train=False, stride=tr.stride, clips="as_trained")
    return TemporalSampler(ts.strategy, ts.seq_len, train=False, stride=ts.stride, clips=ts.clips)


def make_test_transform(cfg, model) -> ClipTransform:
    mean, std = getattr(model, "input_norm", ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)))
    return ClipTransform(cfg.data.height, cfg.data.width, train=False, mean=tuple(mean), std=tuple(std),
                         crop=cfg.data.augment.crop, color=getattr(model, "input_color", "rgb"))


def query_gallery_distances(model, split: ReIDSplit, cfg, device="cpu", progress: bool = False):
    """The (Q, G) distances of a split under ``cfg.test``: embeddings with Euclidean or cosine
    distance (lazily computed rows), k-reciprocal re-ranking (``test.rerank``), or the model's
    pairwise scores (``test.mode=pairwise``).

    Returns:
        (distmat, query features or states, gallery features or states).

    Raises:
        ConfigError: unknown distance or mode, pairwise mode for a model without it, or
            re-ranking combined with pairwise mode.
    """
    sampler = test_sampler(cfg)
    tf = make_test_transform(cfg, model)
    t = cfg.test
    if t.distance not in ("euclidean", "cosine"):
        raise ConfigError(f"test.distance must be euclidean or cosine, got {t.distance!r}")
    if t.mode not in ("embedding", "pairwise"):
        raise ConfigError(f"test.mode must be embedding or pairwise, got {t.mode!r}")
    flow = (FlowCache(split.root, cfg.data.dataset, cfg.data.flow, tracklets=split.query + split.gallery)
            if cfg.data.flow else None)
    if t.mode == "pairwise":
        if not getattr(model, "pairwise", False):
            raise ConfigError(f"test.mode=pairwise: model {type(model).__name__} has no pair_distance")
        if t.rerank:
            raise ConfigError("test.rerank needs embeddings; it does not apply to test.mode=pairwise")
        kw = dict(batch_size=t.batch_size, num_workers=cfg.data.num_workers, device=device, flow=flow)
        qs = extract_states(model, split.root, split.query, sampler, tf, **kw)
        gs = extract_states(model, split.root, split.gallery, sampler, tf, **kw)
        return pairwise_distances(model, qs, gs, device=device), qs, gs
    kw = dict(batch_size=t.batch_size, num_workers=cfg.data.num_workers, device=device,
              channels_last=cfg.train.channels_last, progress=progress, compile=t.compile, flow=flow)
    with autocast(device, amp_dtype(cfg.train.amp, device)):
        qf = extract_across_ranks(model, split.root, split.query, sampler, tf, **kw)
        gf = extract_across_ranks(model, split.root, split.gallery, sampler, tf, **kw)
    for name, f in (("query", qf), ("gallery", gf)):
        bad = int((~torch.isfinite(f).all(1)).sum())
        if bad:
            raise NonFiniteError(f"the model gives NaN or infinite embeddings for {bad} of {len(f)} {name} tracklets: "
                                 "its weights have diverged (lower optim.lr or set optim.max_grad_norm)")
    if t.rerank:
        if t.distance == "cosine":  # re-ranking works on squared Euclidean distances of unit vectors
            qf, gf = torch.nn.functional.normalize(qf, dim=1), torch.nn.functional.normalize(gf, dim=1)
        if len(qf) + len(gf) < t.rerank_k1 + 1:
            raise ConfigError(f"test.rerank_k1={t.rerank_k1}: k-reciprocal re-ranking needs more than k1 tracklets, "
                              f"the query and gallery hold {len(qf) + len(gf)}; lower test.rerank_k1")
        return k_reciprocal_rerank(qf, gf, t.rerank_k1, t.rerank_k2, t.rerank_lambda), qf, gf
    return FeatureDistance(qf, gf, t.distance), qf, gf  # rows computed per chunk, never the dense matrix


def evaluate_split(model, split: ReIDSplit, cfg, device="cpu", progress: bool = False, keep: bool = False) -> dict:
    """Evaluate ``model`` on one split's query and gallery.

    Returns a dict: rank1/5/10/20, mAP, mAP_trapezoid, mINP (fractions; the two mAP formulas
    in :mod:`vidreid.metrics.rank`), the CMC curve, num_valid_queries,
    num_skipped_queries, num_query, num_gallery, split_id; with ``keep`` also ``_distmat`` (the
    distances, for reports).
    """
    for name in ("query", "gallery"):
        if not split.subset(name):
            raise DatasetError(f"{split.root}: the {split.dataset} {name} set of split {split.split_id} is empty"
                               f"{'; excluded: ' + str(split.excluded) if split.excluded else ''}")
    if not split.valid_queries().any():
        raise DatasetError(f"{split.root}: no query of split {split.split_id} has a correct match in the gallery "
                           f"({len(split.query)} queries, {len(split.gallery)} gallery tracklets; gallery items of the "
                           "query's own pid and camera do not count), so CMC and mAP are undefined")
    dist, _, _ = query_gallery_distances(model, split, cfg, device, progress)
    res = evaluate_rank(dist, [t.pid for t in split.query], [t.pid for t in split.gallery],
                        [t.camid for t in split.query], [t.camid for t in split.gallery], max_rank=cfg.test.max_rank)
    out = res.to_dict(REPORT_RANKS)
    out.update(split_id=split.split_id, num_query=len(split.query), num_gallery=len(split.gallery),
               cmc=[float(v) for v in res.cmc])
    if keep:
        out["_distmat"] = dist
    return out


EXTRA_KEYS = ("name", "root", "dataset", "frames")


def extra_test_sets(cfg) -> list[tuple[dict, object, object]]:
    """The extra test sets of ``test.extra``, each ready to test: ``(entry, split, config)`` with
    ``split`` its query / gallery (:class:`~vidreid.data.datasets.Split`) and ``config`` a copy of
    ``cfg`` whose test sampling is ``frames`` evenly spaced frames per tracklet where the entry
    gives ``frames`` (else this config's test protocol).

    Raises:
        ConfigError: an entry that is not ``{name, root[, dataset][, frames]}``.
        DatasetError: a set that is missing or malformed (names its root).
    """
    from omegaconf import OmegaConf

    from ..data.datasets import build_dataset

    out = []
    for k, e in enumerate(OmegaConf.to_container(cfg.test.extra, resolve=True) if cfg.test.extra else []):
        if not isinstance(e, dict) or "name" not in e or "root" not in e or set(e) - set(EXTRA_KEYS):
            raise ConfigError(f"test.extra[{k}]: expected {{name, root[, dataset][, frames]}}, got {e!r}")
        c = cfg.copy()
        if e.get("frames"):
            c.data.test_sampling.strategy, c.data.test_sampling.seq_len = "evenly", int(e["frames"])
        out.append((e, build_dataset(e.get("dataset", "folder"), e["root"]).split(0), c))
    return out


def evaluate_extra(model, cfg, device="cpu") -> list[dict]:
    """Evaluate ``model`` on the extra test sets of ``test.extra`` (e.g. labelled real tracklets
    in the folder layout, such as the PETS 2009 protocols ``vidreid prepare pets2009`` writes),
    each on its own query / gallery with this config's test protocol, or ``frames`` evenly
    spaced frames per tracklet (:func:`extra_test_sets`).

    Returns:
        one metrics dict per set (as :func:`evaluate_split`) with ``dataset`` = its name.

    Raises:
        ConfigError: an entry that is not ``{name, root[, dataset][, frames]}``.
        DatasetError: a set that is missing or malformed (names its root).
    """
    rows = []
    for e, split, c in extra_test_sets(cfg):
        r = evaluate_split(model, split, c, device)
        r.update(dataset=e["name"], protocol=f"{e.get('frames') or 'all'} frames/tracklet", root=str(e["root"]))
        rows.append(r)
    return rows


def summarize(per_split: list[dict]) -> dict:
    """Mean and (population) std over splits of every scalar metric."""
    keys = [f"rank{k}" for k in REPORT_RANKS] + ["mAP", "mAP_trapezoid", "mINP"]
    summary = {"num_splits": len(per_split)}
    for k in keys:
        v = np.array([r[k] for r in per_split], float)
        summary[k] = float(v.mean())
        summary[f"{k}_std"] = float(v.std())
    summary["num_valid_queries"] = int(np.mean([r["num_valid_queries"] for r in per_split]))
    return summary


def format_table(rows: list[dict], title: str = "") -> str:
    """A Markdown table of result rows (each with 'dataset', 'protocol', 'model' and metrics):
    both mAP formulas, ``mAP`` (mean precision at each match) and ``mAP trapz``
    (``mAP_trapezoid``: the official MARS / Market-1501 code's), in %."""
    head = "| dataset | protocol | model | rank-1 | rank-5 | rank-10 | rank-20 | mAP | mAP trapz | mINP | queries |"
    lines = ([f"### {title}", ""] if title else []) + [head, "|---|---|---|---|---|---|---|---|---|---|---|"]

    def f(r, k):
        s = f"{100 * r[k]:.1f}"
        if f"{k}_std" in r and r.get("num_splits", 1) > 1:
            s += f" ± {100 * r[k + '_std']:.1f}"
        return s

    for r in rows:
        lines.append(f"| {r['dataset']} | {r['protocol']} | {r['model']} | {f(r, 'rank1')} | {f(r, 'rank5')} | "
                     f"{f(r, 'rank10')} | {f(r, 'rank20')} | {f(r, 'mAP')} | {f(r, 'mAP_trapezoid')} | {f(r, 'mINP')} | "
                     f"{r['num_valid_queries']} |")
    return "\n".join(lines)


MAP_FORMULAS = {"mAP": "mean precision at each match (torchreid, fast-reid, AP3D)",
                "mAP_trapezoid": "trapezoid rule, compute_AP.m (the official MARS / Market-1501 code)"}


def headline(summary: dict, cfg) -> str:
    """One line naming the mAP of ``test.headline_map`` (the formula the recipe's paper used,
    docs/FIDELITY.md) with its value from a summary or per-split dict."""
    key = cfg.test.headline_map
    return f"headline mAP ({key}: {MAP_FORMULAS[key]}): {100 * summary[key]:.2f}"


def write_json(obj, path: str | Path) -> None:
    """Write ``obj`` as JSON atomically (:func:`vidreid.fileio.atomic_write_json`)."""
    atomic_write_json(path, obj)


from ..device import pick_device  # noqa: E402,F401  (its home is vidreid/device.py; kept importable here)
