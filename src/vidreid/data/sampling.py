"""Temporal sampling: which frames of a tracklet form a clip.

Every strategy maps a tracklet length ``n`` (>= 1) to an int64 array of frame indices in
temporal (non-decreasing) order. Training draws use the generator passed in; test draws are
deterministic. When a tracklet is shorter than the clip, frames are repeated in place
(``floor(arange(L) * n / L)``), which keeps temporal order rather than looping back to the
start, as some public loaders do.

Strategies (config key ``strategy``):

* ``random_consecutive``: ``seq_len`` frames ``stride`` apart from a uniformly random start
  (test: the start is 0). Used by STAR, STRF and most 3D-CNN recipes. A training draw on a
  tracklet too short for the strided window follows AP3D's rule (Gu et al., ECCV 2020,
  ``TemporalRandomCrop``; ``short="random"``, the default): when ``n >= seq_len * stride`` a
  random strided window; when ``seq_len <= n < seq_len * stride``, ``seq_len`` distinct frames
  drawn at random, in temporal order; when ``n < seq_len``, ``seq_len`` frames drawn with
  repetition, in temporal order. So every tracklet of two frames or more gets varied clips.
  ``short="stretch"`` is the older deterministic rule (``floor(arange(L) * n / L)`` whenever the
  window does not fit: on the real MARS training set at T = 4, stride 8, that froze the clip of
  37% of the tracklets).
* ``restricted_random``: the tracklet cut into ``seq_len`` equal chunks, one random frame per
  chunk (test: the first frame of each chunk). Li et al., CVPR 2018, Sec. 3.1.
* ``evenly``: ``seq_len`` frames at an even stride (deterministic).
* ``all``: every frame; feature extraction processes it in fixed-size chunks. For 3D CNNs
  (clip models) ``clips`` says how the tracklet is cut into clips (:meth:`TemporalSampler.clip_plan`):
  ``ap3d``, AP3D's ``test-all.py`` (consecutive clips of ``seq_len`` frames, the last one
  shorter), or ``as_trained``, clips of exactly ``seq_len`` frames ``stride`` apart, as the
  training draws are, covering every frame once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

STRATEGIES = ("random_consecutive", "restricted_random", "evenly", "all")
CLIP_PLANS = ("ap3d", "as_trained")


def _stretch(n: int, L: int) -> np.ndarray:
    return (np.arange(L, dtype=np.int64) * n) // L


@dataclass(frozen=True)
class TemporalSampler:
    """Args:
        strategy: one of :data:`STRATEGIES`.
        seq_len: frames per clip (ignored by ``all``); >= 1.
        train: random draws (True) or the deterministic test variant (False).
        stride: ``random_consecutive`` only: step between the consecutive frames (1 = adjacent).
        short: ``random_consecutive`` training draws on short tracklets: ``random`` (AP3D's
            rule, see the module doc) or ``stretch``.
        clips: ``all`` for clip models: ``ap3d`` or ``as_trained`` (:meth:`clip_plan`).
    Raises:
        ConfigError: unknown strategy, short rule or clip plan, or seq_len < 1.
    """

    strategy: str = "random_consecutive"
    seq_len: int = 8
    train: bool = True
    stride: int = 1
    short: str = "random"
    clips: str = "ap3d"

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"sampling.strategy: unknown {self.strategy!r}; valid: {list(STRATEGIES)}")
        if self.short not in ("random", "stretch"):
            raise ConfigError(f"sampling.short: must be random or stretch, got {self.short!r}")
        if self.clips not in CLIP_PLANS:
            raise ConfigError(f"sampling.clips: must be one of {list(CLIP_PLANS)}, got {self.clips!r}")
        if self.seq_len < 1 or self.stride < 1:
            raise ConfigError(f"sampling.seq_len and sampling.stride must be >= 1, got {self.seq_len}, {self.stride}")

    @property
    def fixed_length(self) -> bool:
        return self.strategy != "all"

    def clip_plan(self, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """How the all-frame test of a clip model (a 3D CNN) cuts a tracklet of ``n`` frames.

        Returns:
            a list of clips, each ``(idx, take)``: ``idx`` int64 frame indices in temporal order,
            ``take`` a bool array of the same length marking the positions whose per-frame
            feature is used. Every frame is taken exactly once over the plan, so averaging the
            taken features weights every frame alike.

        ``clips="ap3d"`` (AP3D, Gu et al. ECCV 2020, ``test-all.py``): consecutive clips of
        ``seq_len`` frames, the last one shorter; every position taken.

        ``clips="as_trained"``: every clip has exactly ``seq_len`` frames ``s`` apart, as the
        training draws of ``random_consecutive`` do, so a model whose computation depends on
        the clip length (STRF's masks sum over the clip's frames, Eq. 3) sees at test what it
        saw in training. ``s`` is ``stride``, lowered to ``n // seq_len`` (at least 1) when the
        tracklet is too short. Blocks of ``seq_len * s`` frames are split into their ``s``
        interleaved clips; a remainder is covered by the block ending at the last frame, taking
        only its frames not yet covered. A tracklet shorter than ``seq_len`` gives one clip with
        frames repeated in place, each frame taken at its first position.
        """
        L = self.seq_len
        if self.clips == "ap3d":
            return [(np.arange(s, min(s + L, n), dtype=np.int64), np.ones(min(L, n - s), bool)) for s in range(0, n, L)]
        if n < L:
            idx = _stretch(n, L)
            take = np.ones(L, bool)
            take[1:] = idx[1:] != idx[:-1]
            return [(idx, take)]
        s = max(1, min(self.stride, n // L))
        span = L * s
        plan, covered = [], 0
        for b0 in range(0, n - span + 1, span):
            plan += [(b0 + p + s * np.arange(L, dtype=np.int64), np.ones(L, bool)) for p in range(s)]
            covered = b0 + span
        if covered < n:
            b0 = n - span
            for p in range(s):
                idx = b0 + p + s * np.arange(L, dtype=np.int64)
                take = idx >= covered
                if take.any():
                    plan.append((idx, take))
        return plan

    def __call__(self, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Frame indices (int64, shape (seq_len,), or (n,) for ``all``) for a tracklet of ``n`` frames.

        Raises:
            ValueError: n < 1, or a training draw without a generator.
        """
        if n < 1:
            raise ValueError(f"tracklet length must be >= 1, got {n}")
        L = self.seq_len
        if self.strategy == "all":
            return np.arange(n, dtype=np.int64)
        if self.train and rng is None:
            raise ValueError("a training draw needs a numpy Generator")
        if self.strategy == "random_consecutive":
            span = (L - 1) * self.stride + 1
            if self.train and self.short == "random":
                if n >= L * self.stride:
                    start = int(rng.integers(0, n - span + 1))
                    return start + np.arange(L, dtype=np.int64) * self.stride
                return np.sort(rng.choice(n, size=L, replace=n < L)).astype(np.int64)
            if n < span:
                return _stretch(n, L)
            start = int(rng.integers(0, n - span + 1)) if self.train else 0
            return start + np.arange(L, dtype=np.int64) * self.stride
        if self.strategy == "restricted_random":
            if n < L:
                return _stretch(n, L)
            bounds = (np.arange(L + 1, dtype=np.int64) * n) // L
            if not self.train:
                return bounds[:-1].copy()
            return bounds[:-1] + (rng.random(L) * (bounds[1:] - bounds[:-1])).astype(np.int64)
        # evenly
        if n < L:
            return _stretch(n, L)
        return np.round(np.linspace(0, n - 1, L)).astype(np.int64)
