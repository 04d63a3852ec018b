"""Batch samplers: P x K identity batches for metric learning.

Randomness is explicit: each epoch's batches are a pure function of (seed, epoch), and every
item carries its own draw seed, so augmentation and temporal sampling do not depend on the
number of DataLoader workers, and a resumed run replays exactly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


class PKBatchSampler(Sampler[list[tuple[int, int]]]):
    """P identities x K tracklets per batch (Hermans et al., 2017).

    Each epoch every identity's tracklets are shuffled and cut into groups of K (an identity
    with fewer than K tracklets, or a remainder, is filled by drawing its tracklets again with
    replacement); batches take P groups of distinct identities at random until fewer than P
    identities have groups left. Yields lists of ``(dataset index, draw seed)``.

    Args:
        pids: pid (or label) of every training tracklet, length N.
        p, k: identities per batch and tracklets per identity (p >= 1, k >= 1).
        seed: master seed.
        rank, world_size: for distributed training, rank r takes batches r, r+W, ... of the
            same global sequence (every rank sees a disjoint share of each epoch).

    Raises:
        ValueError: fewer than ``p`` identities.
    """

    def __init__(self, pids: Sequence[int], p: int, k: int, seed: int = 0, rank: int = 0, world_size: int = 1):
        self.pids = np.asarray(pids)
        self.p, self.k, self.seed = int(p), int(k), int(seed)
        self.rank, self.world_size = rank, world_size
        self.index: dict[int, list[int]] = defaultdict(list)
        for i, pid in enumerate(self.pids.tolist()):
            self.index[pid].append(i)
        self.ids = sorted(self.index)
        if len(self.ids) < self.p:
            raise ValueError(f"P x K sampler: P={self.p} identities per batch but the training set has {len(self.ids)}")
        self.epoch = 0
        self.start_batch = 0  # batches of the current epoch already consumed (for resume)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = int(epoch), int(start_batch)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "start_batch": self.start_batch, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        self.set_epoch(state["epoch"], state["start_batch"])
        self.seed = state["seed"]

    def _epoch_batches(self) -> list[list[tuple[int, int]]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        groups: dict[int, list[list[int]]] = {}
        for pid in self.ids:
            idx = list(rng.permutation(self.index[pid]))
            if len(idx) % self.k:
                idx += list(rng.choice(self.index[pid], self.k - len(idx) % self.k, replace=True))
            groups[pid] = [idx[i:i + self.k] for i in range(0, len(idx), self.k)]
        batches = []
        while True:
            avail = [pid for pid in self.ids if groups[pid]]
            if len(avail) < self.p:
                break
            chosen = rng.choice(avail, self.p, replace=False)
            batch = []
            for pid in chosen:
                batch.extend(int(i) for i in groups[int(pid)].pop())
            batches.append(batch)
        draw = rng.integers(0, 2**62, (len(batches), self.p * self.k))
        return [[(i, int(s)) for i, s in zip(b, d)] for b, d in zip(batches, draw)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        batches = self._epoch_batches()[self.rank::self.world_size]
        for b in batches[self.start_batch:]:
            yield b

    def __len__(self) -> int:
        return len(self._epoch_batches()[self.rank::self.world_size])
