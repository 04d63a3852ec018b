"""Pairwise scoring for models whose representation depends on the query-gallery pair
(e.g. ASTPN's attentive temporal pooling, Xu et al. ICCV 2017, Eqs. 3-5).

Such a model sets ``pairwise = True`` and implements:

* ``sequence_states(clip)``: (B, T, C, H, W) -> (B, T', N) per-tracklet states (e.g. RNN
  outputs), computed once per tracklet;
* ``pair_distance(q_states, g_states)``: two lists of (T_i, N) tensors -> (len(q), len(g))
  distances, evaluated block by block.

The evaluator then ranks and scores exactly as for embeddings (:func:`vidreid.metrics.evaluate_rank`).
Cost: Q x G pair evaluations, which is the price of the design.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..data.sampling import TemporalSampler
from ..data.tracklet import Tracklet
from ..data.transforms import ClipTransform
from ..data.video import ClipDataset
from .features import is_streaming, stream_tracklets


@torch.inference_mode()
def extract_states(model, root, tracklets: list[Tracklet], sampler: TemporalSampler, transform: ClipTransform,
                   batch_size: int = 64, num_workers: int = 2, device="cpu", flow=None) -> list[torch.Tensor]:
    """Per-tracklet states of a pairwise model: a list of (T', N) tensors on the CPU. With the
    ``all`` strategy every tracklet is one sequence of all its frames: streamed in batches of
    ``batch_size`` frames when the model implements the streaming protocol
    (:func:`vidreid.inference.features.stream_tracklets` with ``stream_states``), otherwise one
    clip of all frames (batches of one). ``flow``: a FlowCache for models that take optical flow."""
    model.eval().to(device)
    if sampler.strategy == "all" and is_streaming(model) and hasattr(model, "stream_states"):
        return stream_tracklets(model, root, tracklets, transform, batch_size, num_workers, device,
                                channels_last=False, flow=flow, finish=model.stream_states)
    ds = ClipDataset(root, tracklets, sampler, transform, flow=flow)
    bs = 1 if sampler.strategy == "all" else max(1, batch_size // sampler.seq_len)
    out: list[torch.Tensor] = []
    for b in DataLoader(ds, batch_size=bs, shuffle=False, num_workers=num_workers):
        kw = {"flow": b["flow"].to(device)} if "flow" in b else {}
        out.extend(s.float().cpu() for s in model.sequence_states(b["clip"].to(device), **kw))
    return out


@torch.inference_mode()
def pairwise_distances(model, q_states: list[torch.Tensor], g_states: list[torch.Tensor], block: int = 64,
                       device="cpu") -> np.ndarray:
    """(Q, G) float64 distances from ``model.pair_distance`` over blocks of ``block`` x ``block`` pairs."""
    Q, G = len(q_states), len(g_states)
    out = np.empty((Q, G), np.float64)
    for i in range(0, Q, block):
        qb = [s.to(device) for s in q_states[i:i + block]]
        for j in range(0, G, block):
            gb = [s.to(device) for s in g_states[j:j + block]]
            out[i:i + len(qb), j:j + len(gb)] = model.pair_distance(qb, gb).double().cpu().numpy()
    return out
