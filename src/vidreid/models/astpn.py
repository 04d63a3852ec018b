"""ASTPN: Jointly Attentive Spatial-Temporal Pooling Networks (Xu et al., ICCV 2017).

Per frame, five input channels (YUV standardised per channel, plus horizontal and vertical
optical flow scaled to [-1, 1]) go through a three-layer CNN (Table 1), spatial pyramid pooling
(Eq. 1) and a recurrent layer (Eq. 2); the sequence representation is pooled over time with an
attention that depends on the probe-gallery pair (Eqs. 3-5). Training is siamese with the hinge
loss of Eq. 6 on the squared distance plus identity cross-entropy on v_p and v_g.

Readings and choices, documented:

* Eq. 1's window ceil(w/m) and stride floor(w/m) give exactly m bins only for some sizes (for
  w = 23, m = 8 they give 11); a level where they do not falls back to adaptive max pooling
  (m bins, windows of about ceil(w/m)), so the output length is always c * (64 + 16 + 4 + 1).
* The recurrent outputs o_t (Eq. 2, before the tanh) form P and G, as in RNN-CNN
  (McLaughlin et al., CVPR 2016); dropout (0.5) acts on the recurrent input r_t, as in the
  public reproductions.
* t_p is the row-wise and t_g the column-wise maximum of A (each probe frame's best match over
  the gallery frames, and vice versa).
* Embedding mode ("copy the sequence to form a pair", Sec. 3.3): v_p of the pair (P, P).
* Training pairs: ``pair_mode="given"`` (the paper's, with ``data.sampler: pairs``): the batch
  is a list of pairs, clips 2i and 2i+1 forming pair i, batch size 1 pair with positive and
  negative pairs in turn (:class:`vidreid.data.samplers.PairBatchSampler`).
  ``pair_mode="batch"``: pairs formed inside a P x K batch: every clip is a probe once with a
  positive partner (same person, another camera when the batch has one) and once with a
  negative partner (another person, from another camera than the probe when possible), so
  positive and negative pairs come in equal numbers; the loss averages 2 x P x K pairs per
  step, so at the same lr it makes far less SGD progress per pair than batch size 1.
* Variants (Fig. 5): ``spatial="spp"`` or ``"pool"`` (the RNN-CNN's 2x2 max-pool, flattened)
  and ``temporal="attentive"`` or ``"mean"``: RNN-CNN = pool + mean, ATPN = pool + attentive,
  ASPN = spp + mean, ASTPN = spp + attentive.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from .output import ModelOutput
from .registry import register_model

SPP_LEVELS = (8, 4, 2, 1)


def _adaptive_max_pool_bins(x: torch.Tensor, m: int) -> torch.Tensor:
    """``F.adaptive_max_pool2d(x, m)`` written as m x m slices with static bounds (bin i spans
    [floor(i H / m), ceil((i + 1) H / m)), PyTorch's rule), for ONNX export: the exporter cannot
    express adaptive pooling of a size it does not see as constant. Same values."""
    H, W = int(x.shape[-2]), int(x.shape[-1])
    rows = []
    for i in range(m):
        h0, h1 = (i * H) // m, -((-(i + 1) * H) // m)
        cols = [x[..., h0:h1, (j * W) // m:-((-(j + 1) * W) // m)].amax(dim=(-2, -1)) for j in range(m)]
        rows.append(torch.stack(cols, -1))
    return torch.stack(rows, -2)


def spatial_pyramid_pool(x: torch.Tensor, levels=SPP_LEVELS) -> torch.Tensor:
    """(N, C, H, W) -> (N, C * sum(m^2)) max pooling over m x m bins per level (Eq. 1)."""
    H, W = int(x.shape[-2]), int(x.shape[-1])  # static: constants in an exported graph
    out = []
    for m in levels:
        kh, kw = math.ceil(H / m), math.ceil(W / m)
        sh, sw = H // m, W // m
        if sh >= 1 and sw >= 1 and (H - kh) // sh + 1 == m and (W - kw) // sw + 1 == m:
            p = F.max_pool2d(x, (kh, kw), (sh, sw))
        elif torch.onnx.is_in_onnx_export():
            p = _adaptive_max_pool_bins(x, m)
        else:
            p = F.adaptive_max_pool2d(x, m)
        out.append(p.flatten(1))
    return torch.cat(out, 1)


class ASTPN(nn.Module):
    """Args:
        num_classes: training identities (identity loss on v_p and v_g).
        in_channels: 5 (YUV + 2 flow) or 3 (no flow).
        hidden: N, the recurrent dimension (128).
        spatial, temporal: the variant (see module doc).
        height, width: input size (after cropping), needed by ``spatial="pool"`` to size U.
        dropout: on the recurrent input.
        pair_mode: ``given`` or ``batch`` (see the module doc).

    Input: clip (B, T, 3, H, W) in standardised YUV and flow (B, T, 2, H, W) in [-1, 1].
    """

    frame_decomposable = False
    pairwise = True
    needs_labels = True
    input_color = "yuv_std"

    def __init__(self, num_classes: int = 0, in_channels: int = 5, hidden: int = 128, spatial: str = "spp",
                 temporal: str = "attentive", height: int = 120, width: int = 56, dropout: float = 0.5,
                 pair_mode: str = "batch"):
        super().__init__()
        if pair_mode not in ("given", "batch"):
            raise ConfigError(f"model.pair_mode must be given or batch, got {pair_mode!r}")
        self.pair_mode = pair_mode
        if spatial not in ("spp", "pool") or temporal not in ("attentive", "mean"):
            raise ConfigError(f"ASTPN spatial must be spp|pool and temporal attentive|mean, got {spatial}, {temporal}")
        if in_channels not in (3, 5):
            raise ConfigError(f"ASTPN in_channels must be 5 (YUV + flow) or 3 (YUV), got {in_channels}")
        self.use_flow = in_channels == 5
        self.spatial, self.temporal = spatial, temporal
        self.conv1 = nn.Conv2d(in_channels, 16, 5, 1, 4)
        self.conv2 = nn.Conv2d(16, 32, 5, 1, 4)
        self.conv3 = nn.Conv2d(32, 32, 5, 1, 4)
        with torch.no_grad():
            r_dim = self._spatial(torch.zeros(1, in_channels, height, width)).shape[1]
        self.drop = nn.Dropout(dropout)
        self.U_in = nn.Linear(r_dim, hidden)  # U of Eq. 2
        self.W_rec = nn.Linear(hidden, hidden, bias=False)  # W of Eq. 2
        self.U_att = nn.Parameter(torch.empty(hidden, hidden))  # U of Eq. 3
        nn.init.normal_(self.U_att, std=1.0 / hidden)
        self.classifier = nn.Linear(hidden, num_classes) if num_classes > 0 else None
        self.dim = hidden

    def _spatial(self, x):
        x = F.max_pool2d(torch.tanh(self.conv1(x)), 2)
        x = F.max_pool2d(torch.tanh(self.conv2(x)), 2)
        x = torch.tanh(self.conv3(x))
        if self.spatial == "spp":
            return spatial_pyramid_pool(x)
        return F.max_pool2d(x, 2).flatten(1)

    def frame_inputs(self, frames: torch.Tensor, flow: torch.Tensor | None = None) -> torch.Tensor:
        """Per-frame part: frames (N, 3, H, W) [+ flow (N, 2, H, W)] -> U r_t (N, hidden), the
        recurrent layer's input term of Eq. 2 (CNN, spatial pooling, dropout, U)."""
        x = frames
        if self.use_flow:
            if flow is None:
                raise ValueError("ASTPN with in_channels=5 needs optical flow: set data.flow (see `vidreid flow`)")
            x = torch.cat([frames, flow], 1)
        return self.U_in(self.drop(self._spatial(x)))

    def recur(self, u: torch.Tensor, s: torch.Tensor | None = None):
        """Eq. 2 over u (B, T, hidden) from the state s (B, hidden) (zeros when None): the
        outputs o_t (B, T, hidden) and the last state."""
        if s is None:
            s = u.new_zeros(u.shape[0], u.shape[-1])
        outs = []
        for t in range(u.shape[1]):
            o = u[:, t] + self.W_rec(s)
            s = torch.tanh(o)
            outs.append(o)
        return torch.stack(outs, 1), s

    def sequence_states(self, clip: torch.Tensor, flow: torch.Tensor | None = None) -> torch.Tensor:
        """RNN outputs o_t (B, T, N) of each sequence (Eq. 2)."""
        B, T = clip.shape[:2]
        u = self.frame_inputs(clip.flatten(0, 1), None if flow is None else flow.flatten(0, 1)).view(B, T, -1)
        return self.recur(u)[0]

    def self_pool(self, P: torch.Tensor, block: int = 512) -> torch.Tensor:
        """v_p of the pair (P, P) ("copy the sequence to form a pair", Sec. 3.3) for one
        sequence P (T, N), the attention matrix computed ``block`` rows at a time so memory
        stays O(block * T) for long tracklets. Equal to ``attentive_pool(P, P)[0]``."""
        if self.temporal == "mean":
            return P.mean(0)
        PU = P @ self.U_att
        rowmax = torch.cat([torch.tanh(PU[i:i + block] @ P.T).amax(1) for i in range(0, len(P), block)])
        return (torch.softmax(rowmax, 0).unsqueeze(-1) * P).sum(0)

    # One temporal pass over a whole tracklet, fed in pieces (vidreid.inference.features): the
    # CNN runs on batches of frames, the recurrence carries its state across pieces, and the
    # outputs o_t (hidden floats a frame) wait for the attentive pooling over all of them.
    def stream_frames(self, frames: torch.Tensor, flow: torch.Tensor | None = None) -> tuple[torch.Tensor]:
        return (self.frame_inputs(frames, flow),)

    def stream_init(self) -> dict:
        return {"s": None, "outs": []}

    def stream_update(self, st: dict, feats: tuple[torch.Tensor]) -> dict:
        o, st["s"] = self.recur(feats[0][None], st["s"])
        st["outs"].append(o[0])
        return st

    def stream_states(self, st: dict) -> torch.Tensor:
        """The sequence's RNN outputs (T, N), for pairwise scoring."""
        return torch.cat(st["outs"])

    def stream_finish(self, st: dict) -> torch.Tensor:
        """The copied-pair embedding (N,) of the whole tracklet, equal to ``forward``'s."""
        return self.self_pool(self.stream_states(st))

    def attentive_pool(self, P: torch.Tensor, G: torch.Tensor):
        """Eqs. 3-5 for batches of pairs: P (n, Tp, N), G (n, Tg, N) -> v_p, v_g (n, N) and the
        attention vectors a_p (n, Tp), a_g (n, Tg)."""
        if self.temporal == "mean":
            ap = P.new_full(P.shape[:2], 1.0 / P.shape[1])
            ag = G.new_full(G.shape[:2], 1.0 / G.shape[1])
        else:
            A = torch.tanh(P @ self.U_att @ G.transpose(1, 2))  # (n, Tp, Tg)
            ap = torch.softmax(A.amax(2), dim=1)
            ag = torch.softmax(A.amax(1), dim=1)
        return (ap.unsqueeze(-1) * P).sum(1), (ag.unsqueeze(-1) * G).sum(1), ap, ag

    def forward(self, clip: torch.Tensor, flow: torch.Tensor | None = None, labels=None, camids=None, **batch):
        states = self.sequence_states(clip, flow)
        v_self, _, _, _ = self.attentive_pool(states, states)
        out = ModelOutput(embedding=v_self, features=v_self)
        if not self.training or labels is None:
            return out
        if self.pair_mode == "given":
            if len(labels) % 2:
                raise ValueError(f"ASTPN pair_mode=given needs clips in pairs (data.sampler: pairs), got a batch of {len(labels)}")
            pi = torch.arange(0, len(labels), 2, device=labels.device)
            pj = pi + 1
            same = labels[pi] == labels[pj]
        else:
            pi, pj, same = self._pairs(labels, camids)
        vp, vg, _, _ = self.attentive_pool(states[pi], states[pj])
        out.aux["pair_sqdist"] = (vp - vg).pow(2).sum(1)
        out.aux["pair_same"] = same.float()
        if self.classifier is not None:
            out.aux["pair_logits"] = self.classifier(torch.cat([vp, vg]))
            out.aux["pair_labels"] = torch.cat([labels[pi], labels[pj]])
        return out

    @staticmethod
    def _pairs(labels: torch.Tensor, camids: torch.Tensor | None):
        """(probe idx, gallery idx, same-person flag): each clip once with a positive and once
        with a negative partner, chosen at random (torch's generator) among the preferred ones."""
        n = len(labels)
        cam = camids if camids is not None else torch.zeros_like(labels)
        same_id = labels[:, None] == labels[None, :]
        other_cam = cam[:, None] != cam[None, :]
        eye = torch.eye(n, dtype=torch.bool, device=labels.device)
        pi, pj, flag = [], [], []
        for i in range(n):
            for positive in (True, False):
                cand = (same_id[i] & ~eye[i]) if positive else ~same_id[i]
                pref = cand & other_cam[i]
                pool = torch.nonzero(pref if pref.any() else cand).flatten()
                if len(pool) == 0:
                    continue
                pi.append(i)
                pj.append(int(pool[torch.randint(len(pool), (1,))]))
                flag.append(positive)
        dev = labels.device
        return torch.tensor(pi, device=dev), torch.tensor(pj, device=dev), torch.tensor(flag, device=dev)

    @torch.no_grad()
    def pair_distance(self, q_states: list[torch.Tensor], g_states: list[torch.Tensor]) -> torch.Tensor:
        """(len(q), len(g)) Euclidean distances ||v_p - v_g|| of every probe-gallery pair, with
        the pair-dependent attentive pooling of Eqs. 3-5."""
        Q, G = len(q_states), len(g_states)
        if len({s.shape[0] for s in q_states}) == 1 and len({s.shape[0] for s in g_states}) == 1:
            P, Gs = torch.stack(q_states), torch.stack(g_states)  # (Q, T, N), (G, S, N)
            if self.temporal == "mean":
                return torch.cdist(P.mean(1), Gs.mean(1))
            A = torch.tanh(torch.einsum("qtn,gsn->qgts", P @ self.U_att, Gs))  # all Q x G attention matrices
            ap, ag = torch.softmax(A.amax(3), dim=2), torch.softmax(A.amax(2), dim=2)  # (Q, G, T), (Q, G, S)
            vp = torch.einsum("qgt,qtn->qgn", ap, P)
            vg = torch.einsum("qgs,gsn->qgn", ag, Gs)
            return (vp - vg).norm(dim=2)
        out = torch.empty(Q, G)
        for i, p in enumerate(q_states):
            for j, g in enumerate(g_states):
                vp, vg, _, _ = self.attentive_pool(p[None], g[None])
                out[i, j] = (vp - vg).norm()
        return out


@register_model("astpn")
def astpn(num_classes: int = 0, in_channels: int = 5, hidden: int = 128, spatial: str = "spp",
          temporal: str = "attentive", height: int = 120, width: int = 56, dropout: float = 0.5,
          pair_mode: str = "batch") -> ASTPN:
    """ASTPN (Xu et al., ICCV 2017); see :class:`ASTPN`."""
    return ASTPN(num_classes, in_channels, hidden, spatial, temporal, height, width, dropout, pair_mode)
