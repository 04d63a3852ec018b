"""Tracklet feature extraction, usable on its own (no trainer needed).

Three paths, chosen by the test sampling and the model:

* ``all`` frames with a *frame-decomposable* model (temporal average pooling): frames of many
  tracklets are packed into fixed-size batches (no per-tracklet loop, no padding), decoded in
  DataLoader workers while the model computes, summed per tracklet with ``index_add_``, and
  pooled afterwards; memory is O(batch + N x D) whatever the tracklet lengths.
* ``all`` frames with any other model: each tracklet is cut into consecutive clips of
  ``seq_len`` frames (the last one stretched), clips of many tracklets are batched, and the
  clip embeddings are averaged per tracklet (the common "all frames" test of video re-ID code).
* a fixed-length strategy (``evenly``, ``restricted_random``, ``random_consecutive`` test
  variant): one clip per tracklet.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..data.sampling import TemporalSampler
from ..data.tracklet import Tracklet
from ..data.transforms import ClipTransform
from ..data.video import ClipDataset, FrameDataset, read_frame
from ..models.registry import to_channels_last


class _ChunkDataset(Dataset):
    """Consecutive ``seq_len``-frame chunks of every tracklet. Item: (clip (L,3,H,W), tracklet index)."""

    def __init__(self, root, tracklets: list[Tracklet], seq_len: int, transform: ClipTransform, flow=None):
        self.root, self.tracklets, self.L, self.tf, self.flow = Path(root), tracklets, seq_len, transform, flow
        self.items = [(k, s) for k, t in enumerate(tracklets) for s in range(0, len(t), seq_len)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        k, s = self.items[i]
        t = self.tracklets[k]
        n = min(self.L, len(t) - s)
        idx = s + (np.arange(self.L) * n) // self.L
        frames = np.stack([read_frame(self.root / t.frames[j], self.tf.height, self.tf.width) for j in idx])
        flows = None if self.flow is None else np.stack([self.flow.read(t.frames[j], self.tf.height, self.tf.width) for j in idx])
        clip, fl = self.tf(frames, self.tf.draw(None), flow=flows)
        return (clip, k) if fl is None else (clip, k, fl)


class _RawFrames(FrameDataset):
    """Frames decoded and resized only (uint8 (H, W, 3) RGB); normalisation happens per batch in
    the consumer, so workers do the least work and send 4x less data."""

    def __getitem__(self, i):
        k = int(self.owner[i])
        tf = self.transform
        return torch.from_numpy(read_frame(self.root / self.tracklets[k].frames[int(self.offset[i])], tf.height, tf.width)), k


def _frame_fn(model, compile: bool):
    """The per-frame feature function for full batches and for the last, partial one. With
    ``compile``: torch.compile with Inductor weight freezing (conv + BN folded, oneDNN weights
    prepacked) for full batches only, so it compiles once (10-30 s on 2 CPU cores) and never
    recompiles."""
    if not compile:
        return model.frame_features, model.frame_features
    return torch.compile(model.frame_features, dynamic=False), model.frame_features


def _progress(it, total):
    from tqdm import tqdm

    return tqdm(it, total=total, leave=False, desc="extract")


def _loader(ds, batch_size, num_workers):
    return DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      persistent_workers=False, pin_memory=False)


@torch.inference_mode()
def extract_features(model: torch.nn.Module, root, tracklets: list[Tracklet], sampler: TemporalSampler,
                     transform: ClipTransform, batch_size: int = 64, num_workers: int = 2,
                     device: str | torch.device = "cpu", channels_last: bool = True, progress: bool = False,
                     compile: bool = False, flow=None) -> torch.Tensor:
    """Embeddings of ``tracklets``.

    Args:
        model: a vidreid model (put in eval mode here).
        root: dataset root.
        tracklets: N tracklets.
        sampler: the test temporal sampler (``train=False``).
        transform: the test transform (``train=False``).
        batch_size: frames per batch on the all-frame path, clips per batch otherwise.
        num_workers: DataLoader decode workers.
        device: where the model runs.
        channels_last: use channels_last memory format for 4-D inputs (faster on CPU).
        compile: all-frame path of frame-decomposable models only: run full batches through
            ``torch.compile`` with Inductor weight freezing (needs a C++ compiler; about 1.3x
            for ResNet-50 on the CPU, see benchmarks/bench_extract.py). Off by default.
        flow: a :class:`vidreid.data.flow.FlowCache` for models that take optical flow
            (passed to the model as ``flow=`` (B, T, 2, H, W)).

    Returns:
        float32 tensor (N, D) on the CPU, in the order of ``tracklets``.
    """
    model.eval().to(device)
    if channels_last:
        to_channels_last(model)
    N = len(tracklets)
    wrap = _progress if progress else (lambda it, n: it)
    if sampler.strategy == "all" and getattr(model, "frame_decomposable", False) and flow is None:
        import torch._inductor.config as inductor_config

        ds = _RawFrames(root, tracklets, transform)
        mean = torch.tensor(transform.mean, device=device).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(transform.std, device=device).view(1, 3, 1, 1) * 255.0
        full_fn, eager_fn = _frame_fn(model, compile)
        sums = counts = None
        with inductor_config.patch(freezing=True):
            for raw, owner in wrap(_loader(ds, batch_size, num_workers), (len(ds) + batch_size - 1) // batch_size):
                # (N, H, W, 3) uint8 -> (N, 3, H, W) float: the permuted view is already channels_last
                x = (raw.to(device).permute(0, 3, 1, 2).float() - mean) / std
                x = x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
                f = (full_fn if len(x) == batch_size else eager_fn)(x).float().cpu()
                if sums is None:
                    sums = torch.zeros(N, f.shape[1])
                    counts = torch.zeros(N)
                sums.index_add_(0, owner, f)
                counts.index_add_(0, owner, torch.ones(len(owner)))
        pooled = sums / counts[:, None]
        out = []
        for s in range(0, N, 1024):
            out.append(model.head(pooled[s:s + 1024].to(device)).embedding.float().cpu())
        return torch.cat(out)
    if sampler.strategy == "all":
        ds = _ChunkDataset(root, tracklets, sampler.seq_len, transform, flow)
        sums = counts = None
        for b in wrap(_loader(ds, max(1, batch_size // sampler.seq_len), num_workers), None):
            clip, owner = b[0], b[1]
            kw = {"flow": b[2].to(device)} if len(b) > 2 else {}
            e = model(clip.to(device), **kw).embedding.float().cpu()
            if sums is None:
                sums, counts = torch.zeros(N, e.shape[1]), torch.zeros(N)
            sums.index_add_(0, owner, e)
            counts.index_add_(0, owner, torch.ones(len(owner)))
        return sums / counts[:, None]
    ds = ClipDataset(root, tracklets, sampler, transform, flow=flow)
    out = []
    for b in wrap(_loader(ds, max(1, batch_size // sampler.seq_len), num_workers), None):
        kw = {"flow": b["flow"].to(device)} if "flow" in b else {}
        out.append(model(b["clip"].to(device), **kw).embedding.float().cpu())
    return torch.cat(out)
