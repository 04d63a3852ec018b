"""Tracklet feature extraction, usable on its own (no trainer needed).

With the ``all`` test sampling (every frame of a tracklet), the path depends on the model, and
each gives what the model computes on the whole tracklet at once, with memory bounded by a
batch of frames whatever the tracklet's length:

* *frame-decomposable* models (temporal average pooling, ``frame_decomposable = True``):
  frames of many tracklets are packed into fixed-size batches, decoded in DataLoader workers,
  summed per tracklet with ``index_add_`` and pooled afterwards; memory O(batch + N x D).
* *streaming* models (recurrent or attending over time: STAR, RRU + STIM, ASTPN, max-pooling
  baseline; they implement :class:`StreamingModel`): frames of consecutive tracklets are
  packed into batches for the per-frame network; each tracklet's run of frames is then fed,
  in order, to the model's temporal module, which carries its state (recurrent state, running
  sums, the few per-frame values an attention over time needs) from one batch to the next.
  One temporal pass over the whole tracklet: STAR Sec. 4.2 ("in testing, all frames in each
  video were used"), RRU + STIM Sec. 4.1 ("using all frames of one video sequence"), ASTPN
  Sec. 3.3 ("copy the sequence to form a pair"). The embedding equals ``model(clip)`` on all
  frames at once (tests/test_streaming.py).
* *clip-decomposable* 3D CNNs (``clip_decomposable = True``: C2D/I3D/P3D, STRF): the tracklet
  is cut into clips by the sampler's :meth:`~vidreid.data.sampling.TemporalSampler.clip_plan`:
  AP3D's all-frame test (Gu et al., ECCV 2020, ``test-all.py``: consecutive clips of
  ``seq_len`` frames, AP3D: 32, the last one shorter) or clips of exactly the training length
  and stride (``clips: as_trained``); the per-frame features the plan takes (every frame once)
  are averaged over the tracklet's frames and the head (BN-neck) applied.
* any other model (e.g. STAN, whose enhancement is built for N frames): consecutive clips of
  ``seq_len`` frames, the last one stretched to ``seq_len`` by repeating frames in place, clip
  embeddings averaged with weights equal to each clip's number of *real* frames.

A fixed-length strategy (``evenly``, ``restricted_random`` (STAN's test: the first frame of
each of N chunks), ``random_consecutive`` test variant) gives one clip per tracklet.
"""

from __future__ import annotations

import dataclasses

from pathlib import Path

from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..data.sampling import TemporalSampler
from ..data.tracklet import Tracklet
from ..data.transforms import ClipTransform
from ..data.video import ClipDataset, FrameDataset, read_frame
from ..models.registry import to_channels_last


@runtime_checkable
class StreamingModel(Protocol):
    """What a model implements so that the all-frame test is one temporal pass over each
    tracklet, fed in pieces (see the module doc).

    * ``stream_frames(frames, flow=None)``: frames float (N, 3, H, W) (flow (N, 2, H, W) for
      flow models) -> a tuple of per-frame tensors, each (N, ...), computed frame by frame;
    * ``stream_init()``: the empty state of one tracklet;
    * ``stream_update(state, feats)``: feed the next consecutive frames of that tracklet (the
      rows of ``stream_frames``' output that belong to it, in order); returns the state;
    * ``stream_finish(state)``: the embedding (D,), equal to ``forward`` on all frames at once.
    """

    def stream_frames(self, frames: torch.Tensor, flow: torch.Tensor | None = None) -> tuple: ...
    def stream_init(self) -> Any: ...
    def stream_update(self, state: Any, feats: tuple) -> Any: ...
    def stream_finish(self, state: Any) -> torch.Tensor: ...


class _PlanDataset(Dataset):
    """The clips of every tracklet's :meth:`TemporalSampler.clip_plan`. Item: (clip (L', 3, H, W),
    tracklet index, take (L',) bool[, flow])."""

    def __init__(self, root, tracklets: list[Tracklet], sampler: TemporalSampler, transform: ClipTransform, flow=None):
        self.root, self.tracklets, self.tf, self.flow = Path(root), tracklets, transform, flow
        self.items = [(k, idx, take) for k, t in enumerate(tracklets) for idx, take in sampler.clip_plan(len(t))]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        k, idx, take = self.items[i]
        t = self.tracklets[k]
        frames = np.stack([read_frame(self.root / t.frames[j], self.tf.height, self.tf.width) for j in idx])
        flows = None if self.flow is None else np.stack([self.flow.read(t.frames[j], self.tf.height, self.tf.width) for j in idx])
        clip, fl = self.tf(frames, self.tf.draw(None), flow=flows)
        return (clip, k, torch.from_numpy(take)) if fl is None else (clip, k, torch.from_numpy(take), fl)


class _ChunkDataset(Dataset):
    """Consecutive ``seq_len``-frame chunks of every tracklet, the last, shorter one stretched to
    ``seq_len`` by repeating frames in place. Item: (clip (seq_len, 3, H, W), tracklet index,
    real frames n[, flow])."""

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
        return (clip, k, n) if fl is None else (clip, k, n, fl)


class _StreamFrames(FrameDataset):
    """Every frame of every tracklet in (tracklet, frame) order, transformed as the test clip
    transform does (every test transform is per frame), with its flow. Item: (frame (3, H, W):
    float, or uint8 with a ``uint8_out`` RGB transform; flow float (2, H, W) or an empty tensor,
    tracklet index)."""

    def __init__(self, root, tracklets, transform, flow=None):
        super().__init__(root, tracklets, transform)
        self.flow = flow

    def __getitem__(self, i):
        k = int(self.owner[i])
        tf, name = self.transform, self.tracklets[k].frames[int(self.offset[i])]
        f = read_frame(self.root / name, tf.height, tf.width)
        fl = None if self.flow is None else self.flow.read(name, tf.height, tf.width)[None]
        clip, flow = tf(f[None], tf.draw(None), flow=fl)
        return clip[0], (flow[0] if flow is not None else torch.zeros(0)), k


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


def _loader(ds, batch_size, num_workers, collate_fn=None, device="cpu"):
    """Ordered batches; pinned host memory when they go to a GPU (asynchronous copies)."""
    return DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      persistent_workers=False, pin_memory=torch.device(device).type == "cuda",
                      collate_fn=collate_fn)


def is_streaming(model) -> bool:
    """True when ``model`` implements :class:`StreamingModel` (and does not turn it off with a
    false ``streaming`` attribute, e.g. an ablation whose temporal module cannot stream)."""
    return (all(callable(getattr(model, m, None)) for m in ("stream_frames", "stream_init", "stream_update", "stream_finish"))
            and getattr(model, "streaming", True))


def stream_tracklets(model, root, tracklets: list[Tracklet], transform: ClipTransform, batch_size: int = 64,
                     num_workers: int = 2, device="cpu", channels_last: bool = True, flow=None,
                     finish: Callable[[Any], torch.Tensor] | None = None, wrap=None) -> list[torch.Tensor]:
    """Run a :class:`StreamingModel` over every frame of ``tracklets``: per-frame network on
    batches of ``batch_size`` frames (packed across consecutive tracklets), each tracklet's
    frames fed in order to ``stream_update``, ``finish(state)`` (default ``stream_finish``)
    applied when its last frame has been fed. Memory: one batch of frames plus the open
    tracklets' states (at most the tracklets of one batch).

    Returns:
        one float32 CPU tensor per tracklet, in the order of ``tracklets``.
    """
    finish = finish or model.stream_finish
    # RGB frames leave the workers as uint8 and are normalised where the model runs (4x less
    # to pass between processes and to copy to a GPU; the same floats: ClipTransform.finish)
    transform = dataclasses.replace(transform, uint8_out=True)
    ds = _StreamFrames(root, tracklets, transform, flow)
    remaining = np.array([len(t) for t in tracklets], np.int64)
    states: dict[int, Any] = {}
    out: list[torch.Tensor | None] = [None] * len(tracklets)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    batches = _loader(ds, batch_size, num_workers, device=device)
    for x, fl, owner in (wrap(batches, len(batches)) if wrap else batches):
        x = transform.finish(x.to(device, non_blocking=True)).contiguous(memory_format=fmt)
        feats = model.stream_frames(x, fl.to(device) if flow is not None else None)
        own = owner.numpy()
        cuts = [0, *(np.flatnonzero(np.diff(own)) + 1).tolist(), len(own)]
        for s, e in zip(cuts[:-1], cuts[1:]):
            k = int(own[s])
            st = states.pop(k) if k in states else model.stream_init()
            st = model.stream_update(st, tuple(f[s:e] for f in feats))
            remaining[k] -= e - s
            if remaining[k] == 0:
                out[k] = finish(st).float().cpu()
            else:
                states[k] = st
    return out  # type: ignore[return-value]


def _collate_clips(items):
    return items


@torch.inference_mode()
def extract_features(model: torch.nn.Module, root, tracklets: list[Tracklet], sampler: TemporalSampler,
                     transform: ClipTransform, batch_size: int = 64, num_workers: int = 2,
                     device: str | torch.device = "cpu", channels_last: bool = True, progress: bool = False,
                     compile: bool = False, flow=None) -> torch.Tensor:
    """Embeddings of ``tracklets`` (the paths are those of the module doc).

    Args:
        model: a vidreid model (put in eval mode here).
        root: dataset root.
        tracklets: N tracklets.
        sampler: the test temporal sampler (``train=False``). With ``all``, ``seq_len`` is the
            clip length of 3D CNNs and of the chunked fallback; other paths ignore it.
        transform: the test transform (``train=False``).
        batch_size: frames per batch on the all-frame paths, clips per batch otherwise.
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
    if N == 0:
        raise ValueError("extract_features: no tracklets")
    if sampler.strategy == "all" and getattr(model, "frame_decomposable", False) and flow is None:
        import torch._inductor.config as inductor_config

        ds = _RawFrames(root, tracklets, transform)
        mean = torch.tensor(transform.mean, device=device).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(transform.std, device=device).view(1, 3, 1, 1) * 255.0
        full_fn, eager_fn = _frame_fn(model, compile)
        sums = counts = None
        with inductor_config.patch(freezing=True):
            for raw, owner in wrap(_loader(ds, batch_size, num_workers, device=device), (len(ds) + batch_size - 1) // batch_size):
                # (N, H, W, 3) uint8 -> (N, 3, H, W) float: the permuted view is already channels_last
                x = (raw.to(device, non_blocking=True).permute(0, 3, 1, 2).float() - mean) / std
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
    if sampler.strategy == "all" and is_streaming(model):
        return torch.stack(stream_tracklets(model, root, tracklets, transform, batch_size, num_workers, device,
                                            channels_last, flow, wrap=wrap if progress else None))
    # RGB clips leave the workers as uint8 and are normalised where the model runs
    tf8 = dataclasses.replace(transform, uint8_out=True)
    if sampler.strategy == "all" and getattr(model, "clip_decomposable", False):
        # the sampler's clip plan (AP3D's test-all, or clips as trained); the per-frame features
        # it takes (every frame once) averaged over the tracklet's frames, then the head (BN-neck)
        ds = _PlanDataset(root, tracklets, sampler, tf8, flow)
        sums, counts = None, torch.zeros(N)
        for items in wrap(_loader(ds, max(1, batch_size // sampler.seq_len), num_workers, _collate_clips, device=device), None):
            by_len: dict[int, list] = {}
            for it in items:
                by_len.setdefault(len(it[2]), []).append(it)
            for group in by_len.values():
                clip = tf8.finish(torch.stack([it[0] for it in group]).to(device, non_blocking=True))
                f = model.clip_frame_features(clip).float().cpu()  # (b, L', D)
                if sums is None:
                    sums = torch.zeros(N, f.shape[-1])
                take = torch.stack([it[2] for it in group]).float()  # (b, L')
                owner = torch.tensor([it[1] for it in group])
                sums.index_add_(0, owner, (f * take[:, :, None]).sum(1))
                counts.index_add_(0, owner, take.sum(1))
        pooled = sums / counts[:, None]
        return torch.cat([model.head(pooled[s:s + 1024].to(device)).embedding.float().cpu() for s in range(0, N, 1024)])
    if sampler.strategy == "all":
        # fallback: stretched last chunk, clip embeddings weighted by their real frames
        ds = _ChunkDataset(root, tracklets, sampler.seq_len, tf8, flow)
        sums = counts = None
        for b in wrap(_loader(ds, max(1, batch_size // sampler.seq_len), num_workers, device=device), None):
            clip, owner, n = b[0], b[1], b[2].float()
            kw = {"flow": b[3].to(device)} if len(b) > 3 else {}
            e = model(tf8.finish(clip.to(device, non_blocking=True)), **kw).embedding.float().cpu()
            if sums is None:
                sums, counts = torch.zeros(N, e.shape[1]), torch.zeros(N)
            sums.index_add_(0, owner, e * n[:, None])
            counts.index_add_(0, owner, n)
        return sums / counts[:, None]
    ds = ClipDataset(root, tracklets, sampler, tf8, flow=flow)
    out = []
    for b in wrap(_loader(ds, max(1, batch_size // sampler.seq_len), num_workers, device=device), None):
        kw = {"flow": b["flow"].to(device)} if "flow" in b else {}
        out.append(model(tf8.finish(b["clip"].to(device, non_blocking=True)), **kw).embedding.float().cpu())
    return torch.cat(out)
