"""PyTorch datasets over tracklets: clips for training and clip-level test extraction, and a
flat frame dataset for all-frame extraction.

Items are addressed by ``index`` or by ``(index, draw_seed)`` (what
:class:`~vidreid.data.samplers.PKBatchSampler` yields): the draw seed fixes the clip's temporal
sample and augmentation, so a run is reproducible whatever the number of workers.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DatasetError
from .sampling import TemporalSampler
from .tracklet import Tracklet
from .transforms import ClipTransform


def read_frame(path: Path, height: int, width: int) -> np.ndarray:
    """Read an image as uint8 RGB (height, width, 3).

    Raises:
        DatasetError: the file is missing or not a decodable image (names the path).
    """
    try:
        data = np.fromfile(str(path), np.uint8)
    except OSError as e:
        raise DatasetError(f"cannot read image {path}: {e.strerror or e}") from None
    if len(data) >= 4 and data[0] == 0xFF and data[1] == 0xD8:
        # a JPEG must end with its EOI marker (FF D9), possibly followed by padding; libjpeg
        # decodes a truncated file with grey fill and only a warning on stderr
        tail = bytes(data[-64:]).rstrip(b"\x00\r\n ")
        if not tail.endswith(b"\xff\xd9"):
            raise DatasetError(f"truncated JPEG {path}: no end-of-image marker (the file was cut short)")
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if len(data) else None
    if img is None:
        raise DatasetError(f"cannot read image {path}: missing or not a decodable image")
    if img.shape[0] != height or img.shape[1] != width:
        img = cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


class ClipDataset(Dataset):
    """Clips of tracklets.

    Args:
        root: dataset root (tracklet frame paths are relative to it).
        tracklets: the subset.
        sampler: temporal sampler (training or test variant).
        transform: clip transform.
        labels: pid -> training label (0..C-1); items get label -1 when None.
        flow: an optical-flow cache (:class:`vidreid.data.flow.FlowCache`): items then also
            hold ``flow`` float (T, 2, H, W), aligned with the frames and transformed with them.

    Item: dict with ``clip`` float (T, 3, H, W), ``label`` int64, ``pid``, ``camid``, ``index``;
    with a uint8 transform (:attr:`ClipTransform.device_normalised`) ``clip`` is uint8 and
    ``erase`` int64 (4,) holds the erasing box, both for :meth:`ClipTransform.finish`.
    """

    def __init__(self, root, tracklets: list[Tracklet], sampler: TemporalSampler, transform: ClipTransform,
                 labels: dict[int, int] | None = None, flow=None):
        self.root, self.tracklets = Path(root), tracklets
        self.sampler, self.transform, self.labels, self.flow = sampler, transform, labels, flow

    def __len__(self) -> int:
        return len(self.tracklets)

    def __getitem__(self, item):
        index, draw = (item if isinstance(item, tuple) else (item, None))
        t = self.tracklets[index]
        rng = np.random.default_rng(draw) if draw is not None else None
        idx = self.sampler(len(t), rng)
        tf = self.transform
        frames = np.stack([read_frame(self.root / t.frames[i], tf.height, tf.width) for i in idx])
        flows = None
        if self.flow is not None:
            flows = np.stack([self.flow.read(t.frames[i], tf.height, tf.width) for i in idx])
        params = tf.draw(rng)
        clip, fl = tf(frames, params, flow=flows)
        label = self.labels[t.pid] if self.labels is not None else -1
        item = {"clip": clip, "label": torch.tensor(label, dtype=torch.int64), "pid": t.pid, "camid": t.camid,
                "index": index}
        if fl is not None:
            item["flow"] = fl
        if tf.device_normalised:
            item["erase"] = tf.erase_box(params)
        return item


class FrameDataset(Dataset):
    """Every frame of every tracklet, flattened in (tracklet, frame) order, for all-frame
    feature extraction. Item: (float (3, H, W), tracklet index)."""

    def __init__(self, root, tracklets: list[Tracklet], transform: ClipTransform):
        self.root, self.tracklets, self.transform = Path(root), tracklets, transform
        lengths = np.array([len(t) for t in tracklets], np.int64)
        self.owner = np.repeat(np.arange(len(tracklets)), lengths)
        self.offset = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)

    def __len__(self) -> int:
        return len(self.owner)

    def __getitem__(self, i):
        k = int(self.owner[i])
        tf = self.transform
        f = read_frame(self.root / self.tracklets[k].frames[int(self.offset[i])], tf.height, tf.width)
        clip, _ = tf(f[None], tf.draw(None))
        return clip[0], k
