"""Joint training on several datasets (e.g. STAN's joint fine-tuning on PRID-2011 + iLIDS-VID +
MARS, Li et al. CVPR 2018 Sec. 4.2; torchreid's multi-source training): the training sets of
several benchmarks become one, with identities relabelled disjointly; each source keeps its own
test protocol.

A source is ``{dataset, root[, split_id][, mars_gallery][, min_seq_len][, optional]}`` (config key
``data.sources``); an ``optional: true`` source whose root does not exist is left out and named
(e.g. STAN's image pre-training on whichever of the paper's datasets the user has). Identities of different sources are never merged, even with equal pid
numbers: source k's training pids map to the global pids ``base_k + 1 .. base_k + n_k`` in
sorted order (so the sampler and the loss see one label space), and its camera ids to
``1000 * (k + 1) + camid``. Frame paths of the combined tracklets are absolute (each source has
its own root).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from .datasets import build_dataset, dataset_kwargs
from .tracklet import ReIDSplit, Tracklet

SOURCE_KEYS = ("dataset", "root", "split_id", "mars_gallery", "min_seq_len", "optional")


def source_split_id(ds, split_id) -> int:
    """The split of a source for the run's ``data.split_id``: the same split for a multi-split
    protocol (PRID-2011, iLIDS-VID), split 0 for a one-split one (MARS, DukeV)."""
    if ds.num_splits == 1:
        return 0
    return int(split_id) if split_id != "all" else 0


def load_sources(sources, split_id=0, verify_files: bool = True, skipped: list | None = None) -> list[tuple[str, ReIDSplit]]:
    """[(label, split)] of every source; ``label`` is ``dataset`` (``dataset#k`` when a dataset
    appears twice). Optional sources whose root is missing are left out and appended to
    ``skipped`` as ``"dataset (root)"``.

    Raises:
        ConfigError: a source that is not a mapping with ``dataset`` and ``root``, an unknown key,
            or every source optional and missing.
        DatasetError: a source tree that is missing or malformed.
    """
    out, seen, left_out = [], {}, []
    for k, src in enumerate(sources):
        if not isinstance(src, dict) or "dataset" not in src or "root" not in src:
            raise ConfigError(f"data.sources[{k}]: expected a mapping with dataset and root, got {src!r}")
        bad = sorted(set(src) - set(SOURCE_KEYS))
        if bad:
            raise ConfigError(f"data.sources[{k}]: unknown key(s) {bad}; valid: {list(SOURCE_KEYS)}")
        if src.get("optional") and not Path(src["root"]).exists():
            left_out.append(f"{src['dataset']} ({src['root']})")
            continue
        ds = build_dataset(src["dataset"], src["root"], **dataset_kwargs(
            src["dataset"], verify_files, src.get("min_seq_len", 0), src.get("mars_gallery", "all_test")))
        sid = src["split_id"] if "split_id" in src else source_split_id(ds, split_id)
        n = seen.get(src["dataset"], 0)
        seen[src["dataset"]] = n + 1
        out.append((src["dataset"] if n == 0 else f"{src['dataset']}#{n}", ds.split(int(sid))))
    if skipped is not None:
        skipped.extend(left_out)
    if not out:
        raise ConfigError(f"data.sources: none of the optional sources is present ({', '.join(left_out)})")
    return out


def combine_training_sets(sources: list[tuple[str, ReIDSplit]]) -> tuple[ReIDSplit, list[dict]]:
    """One training split from several sources, identities relabelled disjointly (module doc).

    Returns:
        (split with the combined ``train`` and empty query/gallery, one dict per source:
        name, root, split_id, ids, tracklets, frames, global pid range).
    Raises:
        ConfigError: a source without training tracklets.
    """
    train, table, base = [], [], 0
    for k, (name, sp) in enumerate(sources):
        pids = sorted({t.pid for t in sp.train})
        if not pids:
            raise ConfigError(f"data.sources[{k}] ({name} at {sp.root}): split {sp.split_id} has no training tracklets")
        to_global = {p: base + 1 + i for i, p in enumerate(pids)}
        root = Path(sp.root).resolve()
        for t in sp.train:
            train.append(Tracklet(tuple(str(root / f) for f in t.frames), to_global[t.pid], 1000 * (k + 1) + t.camid,
                                  f"{name}:{t.name}"))
        table.append({"source": name, "root": str(root), "split_id": sp.split_id, "ids": len(pids),
                      "tracklets": len(sp.train), "frames": sum(len(t) for t in sp.train),
                      "global_pids": [base + 1, base + len(pids)], "excluded": dict(sp.excluded)})
        base += len(pids)
    combined = ReIDSplit("+".join(n for n, _ in sources), Path("/"), train, [], [], sources[0][1].split_id,
                         sources[0][1].num_splits, {})
    return combined, table
