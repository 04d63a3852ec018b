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
        rank, world_size: for distributed training, every global P x K batch is split in
            ``world_size`` contiguous equal parts and rank r takes part r, so the ranks together
            see exactly the batch one process would draw (and the same number of steps).

    Raises:
        ValueError: fewer than ``p`` identities, or P x K not divisible by the world size.
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
        if (self.p * self.k) % self.world_size:
            raise ValueError(f"P x K sampler: a batch of P={self.p} x K={self.k} cannot be split in equal parts "
                             f"over {self.world_size} processes")
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
        n = self.p * self.k // self.world_size
        for b in self._epoch_batches()[self.start_batch:]:
            yield b[self.rank * n:(self.rank + 1) * n]

    def __len__(self) -> int:
        return len(self._epoch_batches())


class NeighbourBatchSampler(PKBatchSampler):
    """P x K batches of look-alike identities: graph sampling (Liao and Shao, "Graph Sampling
    Based Deep Metric Learning for Generalizable Person Re-Identification", CVPR 2022; its
    reference code is QAConv's reid/utils/data/graph_sampler.py).

    At every epoch's start the trainer embeds one training tracklet per identity with the model as
    it stands and hands each identity's nearest other identities to :meth:`set_neighbours`. A
    batch is then an anchor identity and its P - 1 nearest neighbours, K tracklets each (drawn
    without replacement, or with it when the identity has fewer than K), so the batch-hard
    triplets meet the people the model confuses most. The paper makes one batch per identity per
    epoch; here an epoch keeps the number of batches :class:`PKBatchSampler` would draw for the
    same seed and epoch, so a recipe's epochs mean the same number of steps with either sampler;
    anchors are taken from random permutations of the identities, without repeats until every
    identity has been one. Batches may share identities (as in the paper).

    The neighbour table is part of :meth:`state_dict`, so a run resumed inside an epoch replays it.

    Args:
        as :class:`PKBatchSampler`.

    Raises:
        ValueError: as :class:`PKBatchSampler`; from :meth:`set_neighbours`, a table of the wrong
            shape.
        RuntimeError: iterating before :meth:`set_neighbours` was called.
    """

    def __init__(self, pids: Sequence[int], p: int, k: int, seed: int = 0, rank: int = 0, world_size: int = 1):
        super().__init__(pids, p, k, seed, rank, world_size)
        self.neighbours: list[list[int]] | None = None

    def set_neighbours(self, table: Sequence[Sequence[int]]) -> None:
        """Set the epoch's neighbour table.

        Args:
            table: one row per identity, in the order of ``self.ids`` (sorted pids): the indices
                (into ``self.ids``) of at least P - 1 other identities, nearest first.

        Raises:
            ValueError: a row count other than the number of identities, a row with fewer than
                P - 1 entries, an index out of range, or a row naming its own identity.
        """
        n = len(self.ids)
        rows = [[int(j) for j in row[:self.p - 1]] for row in table]
        if len(rows) != n:
            raise ValueError(f"neighbour sampler: the table has {len(rows)} rows for {n} identities")
        for i, row in enumerate(rows):
            if len(row) < self.p - 1 or len(set(row)) != len(row):
                raise ValueError(f"neighbour sampler: row {i} needs {self.p - 1} distinct neighbours, it has {row}")
            if any(j == i or not 0 <= j < n for j in row):
                raise ValueError(f"neighbour sampler: row {i} names itself or an index outside 0..{n - 1}: {row}")
        self.neighbours = rows

    def probes(self) -> list[int]:
        """The dataset index of one tracklet per identity, in the order of ``self.ids``, drawn
        from ``(seed, epoch)``: what the trainer embeds to build the epoch's neighbour table."""
        rng = np.random.default_rng([self.seed, self.epoch, 4])
        return [int(rng.choice(self.index[pid])) for pid in self.ids]

    def state_dict(self) -> dict:
        return {**super().state_dict(), "neighbours": self.neighbours}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.neighbours = state.get("neighbours")

    def _epoch_batches(self) -> list[list[tuple[int, int]]]:
        if self.neighbours is None:
            raise RuntimeError("neighbour sampler: set_neighbours must be called before the epoch is drawn")
        count = len(self)  # the P x K sampler's batch count for this (seed, epoch)
        rng = np.random.default_rng([self.seed, self.epoch, 3])
        n = len(self.ids)
        anchors = np.concatenate([rng.permutation(n) for _ in range(-(-count // n))])[:count] if count else []
        batches = []
        for a in anchors:
            batch = []
            for j in [int(a), *self.neighbours[int(a)]]:
                own = self.index[self.ids[j]]
                batch.extend(int(i) for i in rng.choice(own, self.k, replace=len(own) < self.k))
            batches.append(batch)
        draw = rng.integers(0, 2**62, (len(batches), self.p * self.k))
        return [[(i, int(s)) for i, s in zip(b, d)] for b, d in zip(batches, draw)]

    def __len__(self) -> int:
        return len(super()._epoch_batches())


class PairBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches of one probe-gallery pair, positive and negative in turn: the siamese training of
    ASTPN (Xu et al., ICCV 2017, Sec. 4.1.1: "positive and negative sequence pairs were sent to
    our system successively", batch size 1) and RNN-CNN (McLaughlin et al., CVPR 2016).

    Each epoch, in a random order of the identities, every identity A gives a positive pair (a
    random tracklet of A as the probe, a random tracklet of A from another camera, or another
    tracklet of A when it has one camera) followed by a negative pair (the same probe, a random
    tracklet of a random other identity, from another camera than the probe when there is one).
    So an epoch has equal numbers of positive and negative pairs, 2 per identity; an identity
    with a single tracklet has no positive partner and gives its negative pair only (counted in
    ``skipped_positive``). Yields ``[(probe index, draw seed), (gallery index, draw seed)]``;
    same interface as :class:`PKBatchSampler` (set_epoch, state_dict, rank sharding).

    Args:
        pids, camids: of every training tracklet, length N.
        seed, rank, world_size: as for :class:`PKBatchSampler`.
    Raises:
        ValueError: fewer than 2 identities.
    """

    def __init__(self, pids: Sequence[int], camids: Sequence[int], seed: int = 0, rank: int = 0, world_size: int = 1):
        self.pids, self.camids = np.asarray(pids), np.asarray(camids)
        self.seed, self.rank, self.world_size = int(seed), rank, world_size
        self.index: dict[int, list[int]] = defaultdict(list)
        for i, pid in enumerate(self.pids.tolist()):
            self.index[pid].append(i)
        self.ids = sorted(self.index)
        if len(self.ids) < 2:
            raise ValueError(f"pair sampler: negative pairs need 2 identities, the training set has {len(self.ids)}")
        self.skipped_positive = sum(1 for pid in self.ids if len(self.index[pid]) < 2)
        self.epoch = 0
        self.start_batch = 0

    set_epoch = PKBatchSampler.set_epoch
    state_dict = PKBatchSampler.state_dict
    load_state_dict = PKBatchSampler.load_state_dict

    def _partner(self, rng, probe: int, pool: list[int]) -> int | None:
        cands = [j for j in pool if j != probe]
        other = [j for j in cands if self.camids[j] != self.camids[probe]]
        cands = other or cands
        return int(cands[int(rng.integers(len(cands)))]) if cands else None

    def _epoch_batches(self) -> list[list[tuple[int, int]]]:
        rng = np.random.default_rng([self.seed, self.epoch, 2])
        pairs = []
        for pid in rng.permutation(self.ids).tolist():
            own = self.index[pid]
            probe = int(own[int(rng.integers(len(own)))])
            pos = self._partner(rng, probe, own)
            if pos is not None:
                pairs.append((probe, pos))
            others = [q for q in self.ids if q != pid]
            neg_id = others[int(rng.integers(len(others)))]
            pairs.append((probe, self._partner(rng, probe, self.index[neg_id])))
        draw = rng.integers(0, 2**62, (len(pairs), 2))
        return [[(a, int(d[0])), (b, int(d[1]))] for (a, b), d in zip(pairs, draw)]

    def _rank_batches(self) -> list[list[tuple[int, int]]]:
        """This rank's pairs: every ``world_size``-th from ``rank``, after dropping the last
        ``len % world_size`` pairs of the epoch so every rank makes the same number of steps
        (unequal counts would leave one rank waiting in DDP's all-reduce; the pairs dropped
        this epoch are in ``dropped_for_ranks``)."""
        b = self._epoch_batches()
        self.dropped_for_ranks = len(b) % self.world_size
        return b[:len(b) - self.dropped_for_ranks][self.rank::self.world_size]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for b in self._rank_batches()[self.start_batch:]:
            yield b

    def __len__(self) -> int:
        return len(self._rank_batches())
