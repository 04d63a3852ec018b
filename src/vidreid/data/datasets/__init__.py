"""Benchmark loaders by name: ``build_dataset("mars", root)``."""

from __future__ import annotations

from ...errors import ConfigError
from .base import VideoReIDDataset
from .dukev import DukeMTMCVideoReID
from .folder import FolderDataset
from .ilidsvid import ILIDSVID
from .mars import MARS
from .prid2011 import PRID2011

DATASETS: dict[str, type[VideoReIDDataset]] = {
    "prid2011": PRID2011,
    "ilidsvid": ILIDSVID,
    "mars": MARS,
    "dukev": DukeMTMCVideoReID,
    "folder": FolderDataset,
}


def build_dataset(name: str, root, **kwargs) -> VideoReIDDataset:
    """Load the dataset ``name`` from ``root``.

    Raises:
        ConfigError: unknown name (the message lists the valid ones).
        DatasetError: the tree is missing or malformed (the message names the path).
    """
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; valid: {sorted(DATASETS)}")
    return DATASETS[name](root, **kwargs)


def build_dataset_from_config(data_cfg, root=None) -> VideoReIDDataset:
    """The dataset of a config's ``data`` section (``dataset``, ``root``, ``verify_files``,
    ``min_seq_len`` and the protocol options: ``mars_gallery`` for MARS).

    Raises:
        ConfigError, DatasetError: as :func:`build_dataset`.
    """
    kw = dict(verify_files=data_cfg.verify_files, min_seq_len=data_cfg.min_seq_len)
    if data_cfg.dataset == "mars":
        kw["gallery"] = data_cfg.mars_gallery
    return build_dataset(data_cfg.dataset, data_cfg.root if root is None else root, **kw)


__all__ = ["DATASETS", "build_dataset", "build_dataset_from_config", "VideoReIDDataset", "MARS", "PRID2011", "ILIDSVID",
           "DukeMTMCVideoReID", "FolderDataset"]
