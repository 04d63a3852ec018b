"""Benchmark loaders by name: ``build_dataset("mars", root)``."""

from __future__ import annotations

from ...errors import ConfigError
from .base import VideoReIDDataset
from .cuhk03 import CUHK03, CUHK03Detected
from .dukemtmcreid import DukeMTMCReID
from .dukev import DukeMTMCVideoReID
from .folder import FolderDataset
from .ilidsvid import ILIDSVID
from .market1501 import Market1501
from .mars import MARS
from .msmt17 import MSMT17
from .pairsplits import CUHK01, VIPeR
from .prid2011 import PRID2011
from .tracklets import TrackletFolder

DATASETS: dict[str, type[VideoReIDDataset]] = {
    "prid2011": PRID2011,
    "ilidsvid": ILIDSVID,
    "mars": MARS,
    "dukev": DukeMTMCVideoReID,
    "folder": FolderDataset,
    # image re-ID datasets: an image is a one-frame tracklet
    "market1501": Market1501,
    "dukemtmcreid": DukeMTMCReID,
    "msmt17": MSMT17,
    "cuhk03_labeled": CUHK03,
    "cuhk03_detected": CUHK03Detected,
    "viper": VIPeR,
    "cuhk01": CUHK01,
    "tracklets": TrackletFolder,  # a user's unlabelled tracklets (vidreid adapt)
}
IMAGE_DATASETS = ("market1501", "dukemtmcreid", "msmt17", "cuhk03_labeled", "cuhk03_detected", "viper", "cuhk01")


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
    return build_dataset(data_cfg.dataset, data_cfg.root if root is None else root,
                         **dataset_kwargs(data_cfg.dataset, data_cfg.verify_files, data_cfg.min_seq_len,
                                          data_cfg.mars_gallery))


def dataset_kwargs(name: str, verify_files: bool = True, min_seq_len: int = 0, mars_gallery: str = "all_test") -> dict:
    """The loader keyword arguments of dataset ``name``: the common ones and its protocol
    options (``gallery`` for MARS)."""
    kw = dict(verify_files=verify_files, min_seq_len=int(min_seq_len))
    if name == "mars":
        kw["gallery"] = mars_gallery
    return kw


__all__ = ["DATASETS", "build_dataset", "build_dataset_from_config", "dataset_kwargs", "VideoReIDDataset", "MARS", "PRID2011", "ILIDSVID",
           "DukeMTMCVideoReID", "FolderDataset", "IMAGE_DATASETS", "Market1501", "DukeMTMCReID", "MSMT17", "CUHK03",
           "CUHK03Detected", "VIPeR", "CUHK01"]
