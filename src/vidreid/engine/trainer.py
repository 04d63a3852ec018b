"""The training loop. It knows configs, data, optimisers and checkpoints, not models: a model
returns a ModelOutput and the composed loss reads what it needs from it.

Single-process assumptions are kept out: the P x K sampler shards batches by rank, and only
rank 0 logs and writes checkpoints (``torch.distributed`` when initialised, e.g. under torchrun).
"""

from __future__ import annotations

import json
import math
import signal
import threading
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from ..config import from_container, to_container
from ..data.datasets import build_dataset_from_config
from ..data.multisource import combine_training_sets, load_sources
from ..data.flow import FlowCache
from ..data.samplers import NeighbourBatchSampler, PairBatchSampler, PKBatchSampler
from ..data.sampling import TemporalSampler
from ..data.transforms import ClipTransform
from ..data.video import ClipDataset
from ..errors import ConfigError, NonFiniteLossError, TrainingInterrupted
from ..fileio import atomic_write_json, atomic_write_text
from ..losses import CompositeLoss
from ..models import create_model
from ..models.registry import matches_prefix, to_channels_last, train_mode
from .checkpoint import (CheckpointError, load_checkpoint, load_model_state, nonfinite_tensors, rng_state,
                         save_checkpoint, set_rng_state)
from .distributed import all_gather_object, all_gather_with_grad, barrier, local_device, max_over_ranks, rank_world
from .distill import FeatureDistillation
from .rundir import MANIFEST, new_run_id, open_run_folder
from .evaluator import (amp_dtype, autocast, evaluate_extra, evaluate_split, extract_across_ranks, make_test_transform,
                        pick_device, write_json)


# Settings that may differ between a run and its resumption: where things are written or read,
# how fast, and how the model is tested. Anything else changed on --resume is an error unless
# the caller allows it (then the new values are applied and recorded).
RESUME_FREE_KEYS = ("train.output_dir", "train.progress", "train.log_every", "train.device", "train.checkpoint_every",
                    "train.channels_last", "data.num_workers", "data.root", "data.verify_files", "test.")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def changed_settings(old: dict, new: dict) -> dict[str, tuple]:
    """{dotted key: (old, new)} of the settings that differ between two config containers,
    ignoring :data:`RESUME_FREE_KEYS`."""
    a, b = _flatten(old), _flatten(new)
    out = {}
    for k in sorted(set(a) | set(b)):
        if any(k == f or (f.endswith(".") and k.startswith(f)) for f in RESUME_FREE_KEYS):
            continue
        if a.get(k, "<unset>") != b.get(k, "<unset>"):
            out[k] = (a.get(k, "<unset>"), b.get(k, "<unset>"))
    return out


def _detached(v):
    if torch.is_tensor(v):
        return v.detach()
    if isinstance(v, (list, tuple)):
        return type(v)(_detached(x) for x in v)
    if isinstance(v, dict):
        return {k: _detached(x) for k, x in v.items()}
    return v


class LossInputsOnly(torch.nn.Module):
    """The model as DistributedDataParallel must see it in training: every output the loss
    does not read (by :class:`~vidreid.models.output.ModelOutput` name) is detached.

    Why: with ``find_unused_parameters`` DDP walks the autograd graph from *all* tensors of
    the forward's output to decide which parameters will get a gradient. A parameter that only
    feeds an output the loss ignores (the classifier of a model trained with OIM alone, an
    attention head whose regulariser a stage leaves out) is then awaited but never gets its
    gradient, its bucket is never reduced, and no bucket after it is either: every rank steps
    with its own local gradient (found by tests/test_distributed.py with a filled OIM table).
    Detached, those parameters are unused for DDP as they are for the loss, and the step
    equals one process's.

    Args:
        model: the model (its output a ModelOutput).
        used: the names the loss reads (``input`` and ``target`` of its terms).
    """

    def __init__(self, model: torch.nn.Module, used: set[str]):
        super().__init__()
        self.model, self.used = model, frozenset(used)

    def forward(self, *args, **kwargs):
        from ..models.output import ModelOutput

        out = self.model(*args, **kwargs)
        keep = (lambda name, v: v if name in self.used else _detached(v))
        return ModelOutput(embedding=keep("embedding", out.embedding), features=keep("features", out.features),
                           logits=keep("logits", out.logits), aux={k: keep(k, v) for k, v in out.aux.items()})


def _worker_init(_worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C to the main process, which stops at a step boundary.

    (OpenCV's thread count is deliberately not changed here: ``cv2.setNumThreads`` in a forked
    worker deadlocks when the parent's OpenCV thread pool was in use at the fork, as it is after
    an evaluation in the main process; observed in the test suite.)"""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def build_optimizer(cfg, model, lr: float | None = None) -> torch.optim.Optimizer:
    """The optimiser of ``cfg.optim`` over the trainable parameters of ``model``, pretrained ones
    (``model.pretrained_parameters()``) at ``pretrained_lr_mult`` times the base lr.

    Args:
        lr: base lr (default ``cfg.optim.lr``; a stage may set its own).
    Raises:
        ConfigError: unknown optimiser, or no trainable parameter.
    """
    o = cfg.optim
    lr = o.lr if lr is None else lr
    pre = set(id(p) for p in (model.pretrained_parameters() if hasattr(model, "pretrained_parameters") else []))
    groups = [
        {"params": [p for p in model.parameters() if p.requires_grad and id(p) in pre], "lr": lr * o.pretrained_lr_mult},
        {"params": [p for p in model.parameters() if p.requires_grad and id(p) not in pre], "lr": lr},
    ]
    if not any(g["params"] for g in groups):
        raise ConfigError("optimiser: no trainable parameter (does a stage's freeze list cover the whole model?)")
    groups = [g for g in groups if g["params"]]
    if o.name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
    if o.name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
    if o.name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=o.momentum, nesterov=o.nesterov, weight_decay=o.weight_decay)
    raise ConfigError(f"optim.name: unknown {o.name!r}; valid: ['adam', 'adamw', 'sgd']")


def lr_factor(cfg, epoch_float: float, schedule=None) -> float:
    """Learning-rate multiplier at a (fractional) epoch: linear warm-up from ``warmup_factor``
    over ``warmup_epochs``, times the decay of ``schedule.name`` (``schedule`` replaces
    ``cfg.schedule`` when given, e.g. a stage's)."""
    s = cfg.schedule if schedule is None else schedule
    warm = 1.0
    if s.warmup_epochs > 0 and epoch_float < s.warmup_epochs:
        a = epoch_float / s.warmup_epochs
        warm = s.warmup_factor * (1 - a) + a
    e = int(math.floor(epoch_float))
    if s.name == "constant":
        decay = 1.0
    elif s.name == "step":
        decay = s.gamma ** (e // s.step_size)
    elif s.name == "multistep":
        decay = s.gamma ** sum(1 for m in s.milestones if e >= m)
    elif s.name == "cosine":
        decay = s.min_lr_factor + (1 - s.min_lr_factor) * 0.5 * (1 + math.cos(math.pi * min(epoch_float, s.epochs) / s.epochs))
    else:
        raise ConfigError(f"schedule.name: unknown {s.name!r}; valid: ['constant', 'step', 'multistep', 'cosine']")
    return warm * decay


def stage_plan(cfg) -> list:
    """The stages of a config as (first epoch, end epoch, stage config); a config without
    ``stages`` is one stage over ``schedule.epochs`` that freezes nothing."""

    from ..config import StageConfig

    stages = list(cfg.stages) or [OmegaConf.structured(StageConfig(name="train", epochs=cfg.schedule.epochs))]
    plan, e = [], 0
    for st in stages:
        if st.epochs < 1:
            raise ConfigError(f"stages[{st.name}].epochs must be >= 1, got {st.epochs}")
        plan.append((e, e + st.epochs, st))
        e += st.epochs
    return plan


def stage_index(plan: list, epoch: int) -> int:
    """Index of the stage that epoch ``epoch`` (0-based) belongs to (the last one past the end)."""
    for i, (a, b, _) in enumerate(plan):
        if a <= epoch < b:
            return i
    return len(plan) - 1


def apply_model_attrs(model, attrs: dict, defaults: dict, where: str) -> None:
    """Set a stage's model attributes; attributes an earlier stage set and this one does not
    go back to their built values (``defaults`` records them).

    Raises:
        ConfigError: the model has no such attribute.
    """
    for k in list(defaults):
        if k not in attrs:
            setattr(model, k, defaults.pop(k))
    for k, v in attrs.items():
        if not hasattr(model, k):
            raise ConfigError(f"{where}.model_attrs: model {type(model).__name__} has no attribute {k!r}")
        defaults.setdefault(k, getattr(model, k))
        setattr(model, k, v)


class Trainer:
    """Train one model on one split of one dataset, as the config says.

    Args:
        cfg: a config from :func:`vidreid.config.load_config`.
        split_id: which protocol split (overrides ``cfg.data.split_id`` when given).
    """

    def __init__(self, cfg, split_id: int | None = None):
        self.cfg = cfg
        self.rank, self.world = rank_world()
        self.run_id = new_run_id()  # kept in checkpoints: a resume continues this run (engine/rundir.py)
        self.run_folder = None
        self.device = local_device() if (self.world > 1 and cfg.train.device == "auto") else pick_device(cfg.train.device)
        amp_dtype(cfg.train.amp, self.device)  # an unusable setting fails here, before any work
        sid = cfg.data.split_id if split_id is None else split_id
        d = cfg.data
        self.sources: list[dict] = []
        self.eval_splits: list = []  # (name, split) pairs evaluated at the end
        if d.sources:
            if d.flow:
                raise ConfigError("data.flow with data.sources: optical flow is not supported in joint training")
            if sid == "all":
                raise ConfigError("data.split_id: Trainer needs an int with data.sources (train_all_splits runs 'all')")
            skipped: list[str] = []
            srcs = load_sources(OmegaConf.to_container(d.sources, resolve=True), sid, d.verify_files, skipped)
            if skipped and self.rank == 0:
                print(f"[sources] not found, left out: {', '.join(skipped)}")
            self.dataset = None
            self.split, self.sources = combine_training_sets(srcs)
            self._source_splits = srcs
            self.eval_splits = [(n, sp) for n, sp in srcs if sp.query and sp.gallery]
            if self.rank == 0:
                for r in self.sources:
                    print(f"[sources] {r['source']} split {r['split_id']} ({r['root']}): {r['ids']} ids, {r['tracklets']} "
                          f"tracklets, {r['frames']} frames -> global pids {r['global_pids'][0]}..{r['global_pids'][1]}")
        else:
            self.dataset = build_dataset_from_config(cfg.data)
            if sid == "all" and self.dataset.num_splits == 1:
                sid = 0  # "all" of a one-split protocol (MARS, DukeV, folder) is that split
            if not isinstance(sid, int):
                raise ConfigError(f"data.split_id: Trainer needs an int, got {sid!r} (use train_all_splits for 'all')")
            self.split = self.dataset.split(sid)
            # a dataset without a query / gallery (e.g. `tracklets`, a user's unlabelled footage) is not tested here
            self.eval_splits = [(d.dataset, self.split)] if self.split.query and self.split.gallery else []
        self.class_meta = None
        if cfg.train.unsupervised:  # every training tracklet its own class; identity labels unused
            self.split, self.class_meta = unsupervised_split(self.split)
        pids = sorted({t.pid for t in self.split.train})
        self.labels = {p: i for i, p in enumerate(pids)}
        self.num_threads = int(cfg.train.num_threads)
        if self.num_threads == -1 and self.device.type == "cpu":
            from .cpu import auto_threads, usable_cores

            self.num_threads = auto_threads()
            if self.rank == 0:
                print(f"[threads] train.num_threads=-1: {self.num_threads} torch thread(s) on {usable_cores()} cores "
                      "(the cores other processes keep busy left out; engine/cpu.py)")
        if self.num_threads > 0:
            torch.set_num_threads(self.num_threads)
        torch.manual_seed(cfg.train.seed)
        self.model = create_model(cfg.model.name, num_classes=len(pids), **cfg.model.args).to(self.device)
        self.init_report = None
        if cfg.train.init_from:
            self.init_report = init_model_from(self.model, str(cfg.train.init_from).replace("{split}", str(sid)))
            if self.rank == 0:
                print(f"[init_from] {self.init_report['path']}: {self.init_report['loaded']} tensors loaded, "
                      f"kept fresh: {self.init_report['fresh'][:6]}{' ...' if len(self.init_report['fresh']) > 6 else ''}")
        if cfg.train.channels_last:
            to_channels_last(self.model)
        # learning without forgetting: the model as it starts is the teacher (engine/distill.py)
        self.distill = (FeatureDistillation(self.model, cfg.train.distill_weight, cfg.train.distill_input,
                                            freeze_bn_stats=bool(cfg.train.freeze_bn_stats))
                        if cfg.train.distill_weight > 0 else None)
        self.num_classes = len(pids)
        self.plan = stage_plan(cfg)
        # weight averaging (train.average_from): the running mean lives beside the model until the
        # last epoch ends, then replaces its weights (use_average)
        self.averaged = None
        if cfg.train.average_from is not None:
            if cfg.train.average_from >= self.plan[-1][1]:
                raise ConfigError(f"train.average_from: {cfg.train.average_from} is not an epoch of this run "
                                  f"(epochs 0..{self.plan[-1][1] - 1})")
            from torch.optim.swa_utils import AveragedModel

            self.averaged = AveragedModel(self.model, use_buffers=True)
        self._base_trainable = {n: p.requires_grad for n, p in self.model.named_parameters()}
        self._attr_defaults: dict = {}
        self.stage = -1
        self.out_dir = Path(cfg.train.output_dir)
        mean, std = getattr(self.model, "input_norm", ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)))
        tf = ClipTransform(d.height, d.width, train=True, flip_p=d.augment.flip_p, pad=d.augment.pad,
                           erase_p=d.augment.erase_p, mean=tuple(mean), std=tuple(std), crop=d.augment.crop,
                           color_p=d.augment.color_p, color_strength=d.augment.color_strength,
                           gray_p=d.augment.gray_p, blur_p=d.augment.blur_p, zoom_p=d.augment.zoom_p,
                           zoom=d.augment.zoom, lowres_p=d.augment.lowres_p, lowres=d.augment.lowres,
                           color=getattr(self.model, "input_color", "rgb"),
                           uint8_out=d.transfer == "uint8" or (d.transfer == "auto" and self.device.type == "cuda"))
        ts = d.train_sampling
        flow = FlowCache(self.split.root, d.dataset, d.flow, all_tracklets_of=self.dataset) if d.flow else None
        self.train_set = ClipDataset(self.split.root, self.split.train,
                                     TemporalSampler(ts.strategy, ts.seq_len, True, ts.stride, ts.short), tf, self.labels,
                                     flow=flow)
        if not self.split.train:
            raise ConfigError(f"data.root {self.split.root}: the {d.dataset} split {sid} has no training tracklets")
        try:
            if d.sampler == "pairs":
                self.sampler = PairBatchSampler([t.pid for t in self.split.train], [t.camid for t in self.split.train],
                                                seed=cfg.train.seed, rank=self.rank, world_size=self.world)
            else:
                cls = NeighbourBatchSampler if d.sampler == "neighbours" else PKBatchSampler
                self.sampler = cls([t.pid for t in self.split.train], d.p, d.k, seed=cfg.train.seed,
                                   rank=self.rank, world_size=self.world)
        except ValueError as e:
            raise ConfigError(f"data.{'sampler' if d.sampler == 'pairs' else 'p / data.k'}: {e}") from None
        self.iters_per_epoch = len(self.sampler)
        if self.iters_per_epoch == 0:
            raise ConfigError(f"data.p={d.p} x data.k={d.k} gives no batch for {len(pids)} training identities")
        self.epoch = 0
        self.global_step = 0
        self._pending: list = []  # (global step, where, loss, parts) of the steps whose loss is not read yet
        # reading the loss synchronises with the device: free on a CPU, a stall on a GPU
        self.check_every_step = self.device.type == "cpu"
        # fp16 needs loss scaling; bf16 and fp32 do not (the scaler is then a no-op)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.train.amp == "fp16")
        self.enter_stage(0)

    # ----------------------------------------------------------------------------- stages
    @property
    def frozen_prefixes(self) -> list[str]:
        return list(self.plan[self.stage][2].freeze)

    def enter_stage(self, idx: int) -> None:
        """Set up stage ``idx``: freeze what it lists, set its model attributes, and build its
        loss (loss-term state such as an OIM lookup table carries over by term key),
        optimiser and schedule.

        Raises:
            ConfigError: a freeze prefix that matches no parameter, or an unknown model attribute.
        """
        if idx == self.stage:
            return
        cfg = self.cfg
        _, _, st = self.plan[idx]
        where = f"stages[{idx}] ({st.name})" if cfg.stages else "config"
        names = [n for n, _ in self.model.named_parameters()]
        for pre in st.freeze:
            if not any(matches_prefix(n, [pre]) for n in names):
                tops = sorted({n.split(".")[0] for n in names})
                raise ConfigError(f"{where}.freeze: {pre!r} matches no parameter; top-level modules: {tops}")
        for n, p in self.model.named_parameters():
            p.requires_grad_(self._base_trainable[n] and not matches_prefix(n, st.freeze))
        apply_model_attrs(self.model, dict(st.model_attrs), self._attr_defaults, where)
        spec = to_container(cfg)["loss"] if st.loss is None else OmegaConf.to_container(st.loss, resolve=True)
        new_loss = CompositeLoss(spec, num_classes=self.num_classes, class_meta=self.class_meta).to(self.device)
        if self.world > 1:
            new_loss.set_gather(all_gather_with_grad, self.world)
        if getattr(self, "loss", None) is not None:
            new_loss.carry_state_from(self.loss)
        self.loss = new_loss
        self.optimizer = build_optimizer(cfg, self.model, st.lr)
        self.net = self._wrap()
        sched = cfg.schedule.copy()
        sched.epochs = st.epochs
        if st.milestones is not None:
            sched.milestones = list(st.milestones)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda it: lr_factor(cfg, it / self.iters_per_epoch, sched))
        self.stage = idx

    def _wrap(self):
        """The module the training step calls: the model itself, or under a process group the
        model in DistributedDataParallel (rebuilt per stage: the set of trainable parameters
        changes; unused parameters, e.g. attention models a stage switches off, are allowed)."""
        if self.world <= 1:
            return self.model
        from torch.nn.parallel import DistributedDataParallel as DDP

        if self.cfg.train.sync_bn and not getattr(self, "_sync_bn_done", False):
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)  # keeps the Parameter objects
            self._sync_bn_done = True
        ids = [self.device.index] if self.device.type == "cuda" else None
        used = {k for _, inp, _, target in self.loss.meta for k in (inp, target) if k is not None}
        return DDP(LossInputsOnly(self.model, used), device_ids=ids, find_unused_parameters=True)

    def close(self) -> None:
        """Let go of the DistributedDataParallel wrapper, which holds the process group (a no-op
        in one process). :meth:`fit` calls it when it ends, however it ends; a later training
        step wraps the model again. Why: a DDP object still alive when the group is destroyed
        is freed only in interpreter finalisation, where gloo often aborts the process
        ("terminate called without an active exception") although the run itself succeeded
        (2 to 3 launches in 10 with 5 processes: ``scripts/gloo_exit_check.py``, docs/RESULTS.md)."""
        if self.world > 1:
            self.net = None

    @torch.no_grad()
    def init_lookup_tables(self) -> dict | None:
        """Start the loss's lookup tables (OIM) from the model's features instead of zeros
        (``train.lut_init``: ``features``, or ``auto`` with ``train.init_from``).

        Why: a fine-tuning run (STAN's per-dataset "Ind" stage, Li et al. CVPR 2018 Table 1)
        starts from a model that already embeds well, but a fresh OIM table is all zeros: every
        identity not yet seen in the first epoch scores 0 against a positive row's 1/tau, and
        Adam, which normalises the gradient's size, takes full-size steps on all layers from
        these early, uninformative gradients. At CPU scale the zero start cost the "Ind" stage
        12 points of rank-1 (docs/RESULTS.md). The STAN paper does not say how the table starts
        when fine-tuning; filling it with the identities' mean features makes the first steps'
        logits those of the trained model.

        How: one clip per training tracklet (the training temporal sampling, its deterministic
        test variant; the test transform, no augmentation), the model in eval mode; a table
        row is the normalised mean of its identity's normalised features (``OIMLoss.fill_from``).
        Under a process group each rank takes a share and the features are gathered, so every
        rank sets the same table.

        Returns:
            ``{"rows": n, "tables": k, "seconds": s}``, or None when nothing was filled.
        Raises:
            ConfigError: the model gives no output of the table term's ``input`` in eval mode.
        """
        mode = self.cfg.train.lut_init
        if mode == "zeros" or (mode == "auto" and not self.cfg.train.init_from):
            return None
        tables = [(term, inp) for term, (_, inp, *_r) in zip(self.loss.terms, self.loss.meta) if hasattr(term, "fill_from")]
        if not tables:
            return None
        from .distributed import all_gather_object

        t0 = time.perf_counter()
        d = self.cfg.data
        ts = d.train_sampling
        sampler = TemporalSampler(ts.strategy if ts.strategy != "all" else "evenly", ts.seq_len, False, ts.stride)
        tf = make_test_transform(self.cfg, self.model)
        mine = list(range(self.rank, len(self.split.train), self.world))
        ds = ClipDataset(self.split.root, [self.split.train[i] for i in mine], sampler, tf, self.labels,
                         flow=self.train_set.flow)
        loader = DataLoader(ds, batch_size=max(1, self.cfg.data.p * self.cfg.data.k), num_workers=d.num_workers,
                            worker_init_fn=_worker_init, pin_memory=self.device.type == "cuda")
        feats: dict[str, list] = {inp: [] for _, inp in tables}
        labels: list = []
        # the loader draws its workers' seeds from the global generator: fork it, so that the
        # training run's random stream is the same with and without this pass
        with torch.random.fork_rng(devices=[]):
            self._fill_pass(loader, feats, labels, mode)
        local = ({k: torch.cat(v) for k, v in feats.items()}, torch.cat(labels)) if labels else None
        parts = [p for p in all_gather_object(local) if p is not None]
        y = torch.cat([p[1] for p in parts])
        rows = 0
        for term, inp in tables:
            rows += term.fill_from(torch.cat([p[0][inp] for p in parts]), y)
        rep = {"rows": rows, "tables": len(tables), "seconds": round(time.perf_counter() - t0, 1)}
        if self.rank == 0:
            print(f"[lut_init] {rows} lookup-table rows set from the initial model's features of {len(self.split.train)} "
                  f"training tracklets ({rep['seconds']} s)")
        return rep

    def _fill_pass(self, loader, feats: dict, labels: list, mode: str) -> None:
        """The forward pass of :meth:`init_lookup_tables`: the model in eval mode (restored
        after); appends each table input's features (CPU float) and the labels."""
        was_training = self.model.training
        self.model.eval()
        try:
            for batch in loader:
                clip = batch["clip"].to(self.device, non_blocking=True)
                extra = {"flow": batch["flow"].to(self.device, non_blocking=True)} if "flow" in batch else {}
                with autocast(self.device, amp_dtype(self.cfg.train.amp, self.device)):
                    out = self.model(clip, **extra)
                for inp in feats:
                    try:
                        f = out.get(inp)
                    except KeyError:
                        raise ConfigError(f"train.lut_init={mode}: the model gives no {inp!r} output in eval mode to fill "
                                          "the loss's lookup table from; set train.lut_init=zeros") from None
                    feats[inp].append(f.float().cpu())
                labels.append(batch["label"])
        finally:
            self.model.train(was_training)

    def sampler_neighbours(self) -> dict:
        """The neighbour table of ``data.sampler=neighbours`` for the epoch about to start (graph
        sampling, Liao and Shao, CVPR 2022; data/samplers.py NeighbourBatchSampler).

        One training tracklet per identity (the sampler's :meth:`~NeighbourBatchSampler.probes`,
        drawn from ``(train.seed, epoch)``) is embedded by the model as it stands, in eval mode and
        as at test (the test transform), from ``data.train_sampling.seq_len`` evenly spaced frames;
        each identity's P - 1 nearest other identities under Euclidean distance between the
        embeddings go to the sampler. Under a process group the features are gathered, so every
        rank gets the same table.

        Returns:
            the log record: epoch, step, ``neighbours_s`` (seconds), ``neighbour_distance`` (the
            mean distance to the nearest other identity).

        Raises:
            NonFiniteLossError: the model gives a NaN or infinite embedding (diverged weights).
        """
        t0 = time.perf_counter()
        cfg, d = self.cfg, self.cfg.data
        picks = [self.split.train[i] for i in self.sampler.probes()]
        was_training = self.model.training
        try:
            with autocast(self.device, amp_dtype(cfg.train.amp, self.device)):
                f = extract_across_ranks(self.model, self.split.root, picks,
                                         TemporalSampler("evenly", d.train_sampling.seq_len, False),
                                         make_test_transform(cfg, self.model), batch_size=cfg.test.batch_size,
                                         num_workers=d.num_workers, device=self.device,
                                         channels_last=cfg.train.channels_last, flow=self.train_set.flow)
        finally:
            self.model.train(was_training)
        f = f.float()
        if not torch.isfinite(f).all():
            raise NonFiniteLossError(f"data.sampler=neighbours: the model gives NaN or infinite embeddings at the start of "
                                     f"epoch {self.epoch + 1}: its weights have diverged (lower optim.lr)")
        dist = torch.cdist(f, f)
        dist.fill_diagonal_(float("inf"))
        near, order = torch.sort(dist, dim=1, stable=True)
        self.sampler.set_neighbours(order[:, :d.p - 1].tolist())
        return {"epoch": self.epoch, "step": self.global_step, "neighbours_s": round(time.perf_counter() - t0, 3),
                "neighbour_distance": float(near[:, 0].mean())}

    def use_average(self) -> int:
        """Replace the model's parameters and floating buffers by their running mean
        (``train.average_from``; SWA, Izmailov et al., UAI 2018, averaged after every step as in
        SWAD, Cha et al., NeurIPS 2021). The BatchNorm statistics are averaged like the weights
        rather than re-estimated by a pass over the training set (torch's ``update_bn``): the
        mean of statistics that each fitted nearby weights, which needs no extra pass and keeps
        frozen layers' statistics exactly as they were. Integer buffers (``num_batches_tracked``)
        keep the model's value. Called once, after the last epoch, before the final checkpoint.

        Returns:
            How many optimiser steps were averaged (0 leaves the model as it is).
        """
        n = int(self.averaged.n_averaged) if self.averaged is not None else 0
        if n:
            mean = self.averaged.module.state_dict()
            with torch.no_grad():
                for k, v in self.model.state_dict().items():
                    if v.is_floating_point():
                        v.copy_(mean[k])
        return n

    def _train_mode(self) -> None:
        """model.train(), with the modules of frozen parameters (their BN statistics) in eval mode,
        and the pretrained BN layers too with ``train.freeze_bn_stats`` (models.registry.train_mode)."""
        train_mode(self.model, self.frozen_prefixes, bool(self.cfg.train.freeze_bn_stats))

    # ----------------------------------------------------------------------------- state
    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "loss": self.loss.state_dict(),
            "sampler": self.sampler.state_dict(),
            "rng": rng_state(),
            "epoch": self.epoch,
            "stage": self.stage,
            "global_step": self.global_step,
            "config": to_container(self.cfg),
            "split_id": self.split.split_id,
            "labels": self.labels,  # training pid -> label: the identities this model has seen
            "dataset": self.cfg.data.dataset,
            "data_root": str(Path(self.split.root).resolve()),
            # per source, the pids it was trained on (for the train/test overlap check)
            "train_identities": ({} if self.cfg.train.unsupervised else  # no identity label was seen
                                 {r["source"].split("#")[0] + "@" + r["root"]: sorted({t.pid for t in sp.train})
                                  for r, (_, sp) in zip(self.sources, self._source_splits)} if self.sources else
                                 {self.cfg.data.dataset + "@" + str(Path(self.split.root).resolve()):
                                  sorted({t.pid for t in self.split.train})}),
            "sources": self.sources,
            "run_id": self.run_id,  # the run this checkpoint continues (engine/rundir.py)
            **({"distill": self.distill.state_dict()} if self.distill is not None else {}),
            **({"averaged": self.averaged.state_dict()} if self.averaged is not None else {}),
        }

    def load_state_dict(self, st: dict, apply_config: bool = False, source="--resume") -> None:
        """Restore a :meth:`state_dict`. With ``apply_config`` the optimiser's hyper-parameters
        and base learning rates are those of this trainer's config rather than the
        checkpoint's (a resume with changed settings, allowed on purpose)."""
        self.enter_stage(st.get("stage", 0))
        load_model_state(self.model, st["model"], source)
        try:
            self.optimizer.load_state_dict(st["optimizer"])
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"checkpoint {source}: its optimiser state does not fit this run's ({e})") from None
        self.scheduler.load_state_dict(st["scheduler"])
        self.loss.load_state_dict(st["loss"])
        self.sampler.load_state_dict(st["sampler"])
        set_rng_state(st["rng"])
        self.epoch, self.global_step = st["epoch"], st["global_step"]
        self.run_id = st.get("run_id") or self.run_id
        if self.distill is not None and "distill" in st:
            self.distill.load_state_dict(st["distill"])
        if self.averaged is not None and "averaged" in st:  # absent: averaging was switched on at this resume
            try:
                self.averaged.load_state_dict(st["averaged"])
            except (RuntimeError, KeyError) as e:
                raise CheckpointError(f"checkpoint {source}: its weight average does not fit this model ({e})") from None
        if apply_config:
            fresh = build_optimizer(self.cfg, self.model, self.plan[self.stage][2].lr)
            factor = self.scheduler.lr_lambdas[0](self.scheduler.last_epoch)
            for g, f in zip(self.optimizer.param_groups, fresh.param_groups):
                for k, v in f.items():
                    if k != "params":
                        g[k] = v
                g["initial_lr"] = f["lr"]
                g["lr"] = f["lr"] * factor
            self.scheduler.base_lrs = [f["lr"] for f in fresh.param_groups]

    def _log(self, rec: dict, writer) -> None:
        if self.rank != 0:
            return
        with open(self.out_dir / "log.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")
        if writer is not None:
            for k, v in rec.items():
                if isinstance(v, (int, float)) and k not in ("epoch", "step"):
                    writer.add_scalar(f"train/{k}", v, rec["step"])

    # ----------------------------------------------------------------------------- loop
    def train_step(self, batch: dict, where: str = "") -> tuple[torch.Tensor, dict]:
        """One optimisation step on a batch from the training loader (moved to the device here,
        a uint8 clip normalised there): forward (under ``train.amp``), the composed loss,
        backward, gradient clipping, optimiser and schedule steps.

        Nothing here waits for the device: the loss and its terms come back as device tensors,
        and whether the loss is finite is recorded on the device (:meth:`check_finite` reads it).
        On a CPU, where reading costs nothing, it is checked at once, before the update.

        Returns:
            ``(loss, parts)``: the loss (0-d tensor) and each term's detached value (0-d tensors).

        Raises:
            NonFiniteLossError: (CPU) a NaN or infinite loss, naming ``where``, before any update.
        """
        cfg = self.cfg
        clip = self.train_set.transform.finish(batch["clip"].to(self.device, non_blocking=True), batch.get("erase"))
        labels = batch["label"].to(self.device, non_blocking=True)
        extra = {"flow": batch["flow"].to(self.device, non_blocking=True)} if "flow" in batch else {}
        if getattr(self.model, "needs_labels", False):  # e.g. siamese models pair the batch
            extra.update(labels=labels, camids=batch["camid"].to(self.device))
        if self.net is None:  # after close()
            self.net = self._wrap()
        with autocast(self.device, amp_dtype(cfg.train.amp, self.device)):
            out = self.net(clip, **extra)
            loss, parts = self.loss(out, labels)
            if self.distill is not None:
                d = self.distill.term(out, clip, **extra)
                loss = loss + d
                parts = dict(parts, distill=d.detach())
        self._pending.append((self.global_step + 1, where, loss.detach(), parts))
        if self.check_every_step:
            self.check_finite()
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if cfg.optim.max_grad_norm > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], cfg.optim.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return loss, parts

    def check_finite(self) -> None:
        """Read the losses of the steps since the last check (one device synchronisation) and
        raise on the first that is not finite. Called every ``train.log_every`` steps, at the
        end of every epoch and before every save (on a CPU, after every step).

        Raises:
            NonFiniteLossError: names the first bad step (epoch, step, global step) and its terms.
        """
        pending, self._pending = self._pending, []
        if not pending:
            return
        finite = torch.isfinite(torch.stack([p[2].float() for p in pending])).cpu()
        if bool(finite.all()):
            return
        first, where, loss, parts = pending[int((~finite).nonzero()[0])]
        raise NonFiniteLossError(f"loss is {float(loss)} at {where} (global step {first}); "
                                 f"terms: {({k: float(v) for k, v in parts.items()})}")

    def _stop_requested(self) -> bool:
        """Whether a stop signal arrived (on any rank, in a process group: every rank then stops
        at the same step, so the checkpoint rank 0 writes is the step every rank reports)."""
        if self.world > 1:
            sig = max_over_ranks(self._signal or 0)
            if sig and self._signal is None:
                self._signal = sig
            return bool(sig)
        return self._signal is not None

    def _trim_log(self) -> None:
        """After a resume, drop log rows past the checkpoint's step (written after it, then
        lost with the interrupted run), so no step appears twice."""
        log = self.out_dir / "log.jsonl"
        if self.rank != 0 or not log.is_file():
            return
        keep = []
        for line in log.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= self.global_step:
                    keep.append(line)
            except ValueError:
                continue  # a line cut by a kill mid-write
        atomic_write_text(log, "".join(k + "\n" for k in keep))

    def _save(self, path: Path) -> None:
        """Checkpoint, unless the model's tensors are no longer finite: then the last good
        checkpoint stays and training stops with an error."""
        self.check_finite()
        bad = nonfinite_tensors({"model": self.model.state_dict()})
        if bad:
            kept = f"the last good checkpoint {path} is kept" if path.exists() else "no checkpoint was written"
            raise NonFiniteLossError(
                f"{len(bad)} model tensors are NaN or infinite after epoch {self.epoch} (e.g. {bad[0]}); {kept}. "
                f"Lower optim.lr (now {self.cfg.optim.lr}) or set optim.max_grad_norm")
        if self.rank == 0:  # every rank checks (the parameters are the same), rank 0 writes
            save_checkpoint(self.state_dict(), path)

    def fit(self, resume: str | Path | None = None, stop_after_epochs: int | None = None,
            allow_changes: bool = False, overwrite: bool | None = None) -> dict:
        """Train for ``schedule.epochs`` epochs (from a checkpoint when ``resume`` is given),
        checkpointing to ``output_dir/checkpoint.pt``; evaluate at the end.

        Args:
            resume: checkpoint to continue from exactly (model, optimiser, schedule, RNG and
                sampler state).
            stop_after_epochs: stop (after checkpointing) once this many epochs are done in
                total, without changing the schedule; for interrupting on purpose.
            allow_changes: on resume, accept settings that differ from the checkpoint's (other
                than :data:`RESUME_FREE_KEYS`); the new ones are applied and ``config.yaml``
                records them. Without it such a difference is an error listing the keys.
            overwrite: replace a finished or started run in ``output_dir`` (default
                ``train.overwrite``); without it, such a folder is an error.

        SIGINT (Ctrl-C) or SIGTERM during training: the current step finishes, a resumable
        checkpoint is written and :class:`~vidreid.errors.TrainingInterrupted` is raised
        (a second signal interrupts at once).

        Returns:
            The final metrics dict (also written to ``output_dir/metrics.json``), or
            ``{"stopped_at_epoch": e}`` when stopped early.

        Raises:
            NonFiniteLossError: a NaN or infinite loss, or parameters that became non-finite
                (names epoch and step; the last good checkpoint is kept).
            ConfigError: ``output_dir`` holds a run and neither ``resume`` nor ``overwrite``;
                a resume with changed settings without ``allow_changes``.
            CheckpointError: an unreadable or unsafe checkpoint.
            TrainingInterrupted: SIGINT / SIGTERM (after saving a resumable checkpoint).
        """
        cfg = self.cfg
        st = load_checkpoint(resume) if resume is not None else None
        # the folder: the user's files are never touched; another run only with overwrite (rundir.py).
        # Rank 0 decides and acts; every rank gets its verdict.
        err = None
        if self.rank == 0:
            try:
                self.run_folder = open_run_folder(
                    self.out_dir, (st.get("run_id") if st else None) or self.run_id,
                    resume_run_id=st.get("run_id") if st else None, resume_path=resume,
                    overwrite=cfg.train.overwrite if overwrite is None else overwrite)
            except ConfigError as e:
                err = str(e)
        if self.world > 1:
            err = all_gather_object(err)[0]
        if err:
            raise ConfigError(err)
        try:
            out = self._fit(st, resume, stop_after_epochs, allow_changes)
        except TrainingInterrupted:
            raise  # a resumable checkpoint of the new run exists: it stays (a replaced run stays aside)
        except BaseException:
            if self.rank == 0:
                self.run_folder.failed()  # put a replaced run back
            raise
        if self.rank == 0 and "stopped_at_epoch" not in out:
            self.run_folder.finished()
        return out

    def _fit(self, st, resume, stop_after_epochs, allow_changes) -> dict:
        cfg = self.cfg
        if resume is not None:
            diff = changed_settings(st["config"], to_container(cfg))
            if diff and not allow_changes:
                lines = "; ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in ((k, *v) for k, v in list(diff.items())[:8]))
                raise ConfigError(f"--resume {resume}: the settings differ from the checkpoint's ({lines}"
                                  f"{'; ...' if len(diff) > 8 else ''}); drop the overrides to continue the run as "
                                  "it was, or pass --allow-changes to apply them")
            self.load_state_dict(st, apply_config=bool(diff), source=resume)
            self._trim_log()
        else:
            self.init_lookup_tables()
        if self.rank == 0:
            atomic_write_text(self.out_dir / "config.yaml", OmegaConf.to_yaml(cfg))
        writer = None
        if self.rank == 0:
            try:
                from torch.utils.tensorboard import SummaryWriter
                writer = SummaryWriter(str(self.out_dir / "tb"))
            except Exception:  # tensorboard missing or broken: the JSONL log still has everything
                writer = None
        # One loader for the whole run: persistent workers are not restarted every epoch. The
        # batch sampler is iterated in this process, so set_epoch below still takes effect.
        loader = DataLoader(self.train_set, batch_sampler=self.sampler, num_workers=cfg.data.num_workers,
                            persistent_workers=cfg.data.num_workers > 0, worker_init_fn=_worker_init,
                            pin_memory=self.device.type == "cuda")
        total_epochs = self.plan[-1][1]
        metrics: dict = {}
        self._signal = None
        handlers = {}

        def on_signal(signum, frame):
            if self._signal is not None:  # a second signal: stop now
                raise KeyboardInterrupt
            self._signal = signum

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                handlers[sig] = signal.signal(sig, on_signal)
        ckpt = self.out_dir / "checkpoint.pt"

        def interrupted(where: str):
            self._save(ckpt)
            barrier()  # every rank reports once rank 0's checkpoint is on disk
            return TrainingInterrupted(self._signal, ckpt, self.epoch, self.global_step, where)

        try:
            while self.epoch < total_epochs:
                start_batch = self.sampler.start_batch if resume is not None else 0
                resume = None
                self.sampler.set_epoch(self.epoch, start_batch)
                self.enter_stage(stage_index(self.plan, self.epoch))
                if isinstance(self.sampler, NeighbourBatchSampler) and start_batch == 0:
                    self._log(self.sampler_neighbours(), writer)  # inside an epoch the resumed state has the table
                self._train_mode()
                it = loader
                if cfg.train.progress and self.rank == 0:
                    from tqdm import tqdm
                    it = tqdm(loader, total=self.iters_per_epoch - start_batch, desc=f"epoch {self.epoch + 1}/{total_epochs}",
                              leave=False)
                t0 = time.perf_counter()
                for i, batch in enumerate(it, start=start_batch):
                    loss, parts = self.train_step(batch, where=f"epoch {self.epoch + 1}, step {i + 1}")
                    clip = batch["clip"]
                    self.global_step += 1
                    self.sampler.start_batch = i + 1
                    if self.averaged is not None and self.epoch >= cfg.train.average_from:
                        self.averaged.update_parameters(self.model)
                    if self.global_step % cfg.train.log_every == 0 or i + 1 == self.iters_per_epoch:
                        self.check_finite()  # the one read of the device per log_every steps
                        lv = float(loss.detach())
                        rec = {"epoch": self.epoch, "stage": self.stage, "step": self.global_step, "loss": lv,
                               "lr": self.optimizer.param_groups[-1]["lr"],
                               "clips_per_s": (i + 1 - start_batch) * clip.shape[0] / (time.perf_counter() - t0)}
                        rec.update({k: float(v) for k, v in parts.items()})
                        self._log(rec, writer)
                        if hasattr(it, "set_postfix"):
                            it.set_postfix(loss=f"{lv:.3f}")
                    check = self.world == 1 or self.global_step % cfg.train.log_every == 0  # same steps on every rank
                    if check and i + 1 < self.iters_per_epoch and self._stop_requested():
                        raise interrupted(f"epoch {self.epoch + 1}, step {i + 1} of {self.iters_per_epoch}")
                dropped = getattr(self.sampler, "dropped_for_ranks", 0)
                if dropped:  # pairs cut so that every rank makes the same number of steps (samplers.py)
                    self._log({"epoch": self.epoch, "step": self.global_step, "pairs_dropped_for_ranks": dropped}, writer)
                self.epoch += 1
                self.sampler.set_epoch(self.epoch, 0)
                if self.epoch == total_epochs and self.averaged is not None:
                    self._log({"epoch": self.epoch, "step": self.global_step, "averaged_steps": self.use_average()}, writer)
                if self._stop_requested():
                    raise interrupted(f"the end of epoch {self.epoch}")
                if self.epoch % cfg.train.checkpoint_every == 0 or self.epoch == total_epochs:
                    self._save(ckpt)
                if cfg.test.eval_every and self.epoch % cfg.test.eval_every == 0 and self.epoch < total_epochs:
                    m = self.evaluate()
                    self._log({"epoch": self.epoch, "step": self.global_step, "eval_rank1": m["rank1"], "eval_mAP": m["mAP"],
                                "eval_mAP_trapezoid": m["mAP_trapezoid"]}, writer)
                if stop_after_epochs is not None and self.epoch >= stop_after_epochs and self.epoch < total_epochs:
                    return {"stopped_at_epoch": self.epoch}
            # the training is complete and saved: from here a signal interrupts at once (the
            # evaluation can be rerun with vidreid test), it is never swallowed
            for sig, h in handlers.items():
                signal.signal(sig, h)
            handlers = {}
            if self._signal is not None:
                raise KeyboardInterrupt
            if threading.current_thread() is threading.main_thread():
                # SIGINT raises at once, as during training also when the process inherited it
                # ignored (a shell without job control starts background jobs so: the test suite
                # run with `&` failed on that). It is also remembered: Python ignores an exception
                # raised in a finaliser (__del__, weakref callbacks), where a handler can happen to
                # run, so the flag is checked after the evaluation. SIGTERM keeps its own handler.
                def on_sigint(signum, frame):
                    self._signal = signum
                    raise KeyboardInterrupt

                handlers = {signal.SIGINT: signal.signal(signal.SIGINT, on_sigint)}
            metrics = self.evaluate()
            if self._signal is not None:
                raise KeyboardInterrupt
            if self.rank == 0:
                write_json(metrics, self.out_dir / "metrics.json")
        finally:
            for sig, h in handlers.items():
                signal.signal(sig, h)
            if writer is not None:
                writer.close()
            self.close()
        return metrics

    def evaluate(self) -> dict:
        """Metrics on the test split of the dataset (of every source with a query and gallery,
        each on its own protocol, under ``per_source``; the first source's at the top level), and
        on the sets of ``test.extra`` under ``extra`` (:func:`~vidreid.engine.evaluator.evaluate_extra`)."""
        per = {}
        for name, sp in self.eval_splits:
            m = evaluate_split(self.model, sp, self.cfg, self.device, progress=self.cfg.train.progress)
            m.update(dataset=name.split("#")[0], model=self.cfg.model.name, epoch=self.epoch)
            per[name] = m
        extra = evaluate_extra(self.model, self.cfg, self.device) if self.cfg.test.extra else []
        self._train_mode()
        if not per:
            out = {"epoch": self.epoch, "model": self.cfg.model.name}
            if extra:
                out["extra"] = [dict(r, model=self.cfg.model.name) for r in extra]
            return out
        first = dict(next(iter(per.values())))
        if self.sources:
            first["per_source"] = per
            first["sources"] = self.sources
        if extra:
            first["extra"] = [dict(r, model=self.cfg.model.name) for r in extra]
        return first


def load_model_from_checkpoint(path, cfg=None, source=None):
    """Rebuild the model a checkpoint was trained with and load its weights. ``path``: the
    checkpoint file, or a checkpoint dict already read with :func:`load_checkpoint` (``source``:
    its file name, for messages).

    Returns (model, config, checkpoint dict).

    Raises:
        CheckpointError: a missing, corrupt, unsafe or foreign checkpoint file.
    """
    st = path if isinstance(path, dict) else load_checkpoint(path)
    source = source if source is not None else ("(given)" if isinstance(path, dict) else path)
    where = f"checkpoint {source}"
    try:
        ckcfg = from_container(st["config"])
        labels = st.get("labels", {})
        model = create_model(ckcfg.model.name, num_classes=len(labels) if isinstance(labels, dict) else 0,
                             **ckcfg.model.args)
    except ConfigError as e:
        raise CheckpointError(f"{where}: its config does not build a model ({e})") from None
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise CheckpointError(f"{where}: its config is not a vidreid config ({type(e).__name__}: {e})") from None
    cfg = cfg or ckcfg
    load_model_state(model, st["model"], source)
    plan = stage_plan(ckcfg)  # the model attributes of the stage the checkpoint was written in
    _, _, stage = plan[st.get("stage", stage_index(plan, st.get("epoch", 0)))]
    apply_model_attrs(model, dict(stage.model_attrs), {}, "checkpoint stage")
    return model, cfg, st


def check_train_test_overlap(st: dict, split, allow: bool = False) -> int:
    """Refuse to test a checkpoint on identities it was trained on: the checkpoint's training
    pids (``labels``) against the split's query and gallery pids (distractors and junk, pid <= 0,
    aside), when the checkpoint was trained on the same dataset (and root, when recorded).

    Returns:
        the number of overlapping identities (0 for another dataset).
    Raises:
        ConfigError: an overlap, unless ``allow`` (``test.allow_train_overlap``).
    """
    ids = st.get("train_identities")
    if ids is not None:  # per source (joint training) or the one dataset, keyed dataset@root
        trained = {int(p) for p in ids.get(f"{split.dataset}@{Path(split.root).resolve()}", [])}
    else:  # older checkpoints: the training pids of the config's dataset
        ck_cfg = st.get("config", {}).get("data", {})
        if ck_cfg.get("dataset") != split.dataset:
            return 0
        trained = {int(p) for p in st.get("labels", {})}
    test = {t.pid for t in split.query + split.gallery if t.pid > 0}
    n = len(trained & test)
    if n and not allow:
        raise ConfigError(
            f"split {split.split_id}: {n} of its {len(test)} test identities were training identities of this "
            f"checkpoint (trained on split {st.get('split_id', 0)}); its numbers would not be a test. Test the split it "
            "was trained on, train every split (data.split_id=all), or set test.allow_train_overlap=true")
    return n


def init_model_from(model, path) -> dict:
    """Load the tensors of a checkpoint's model whose name and shape match ``model``'s; the rest
    (a classifier over another label space, ...) keep their initialisation.

    Returns:
        {"path", "loaded": count, "fresh": names not loaded}.
    Raises:
        CheckpointError: unreadable or unsafe checkpoint.
        ConfigError: nothing matched (another architecture).
    """
    st = load_checkpoint(path)["model"]
    own = model.state_dict()
    take = {k: v for k, v in st.items() if k in own and own[k].shape == v.shape}
    if not take:
        raise ConfigError(f"train.init_from {path}: no tensor of that checkpoint fits this model")
    model.load_state_dict(take, strict=False)
    return {"path": str(path), "loaded": len(take), "fresh": sorted(set(own) - set(take))}


def unsupervised_split(split):
    """The split with every training tracklet relabelled as its own identity (pids 1..N in order),
    and the (N, 3) int array (camera, first frame, last frame) of those classes: frame numbers
    from the first and last frame names (-1 when a name holds none)."""
    import dataclasses

    import numpy as np

    from ..data.datasets.common import frame_number

    def num(name):
        try:
            return frame_number(Path(name).name)
        except ValueError:
            return -1

    train = [dataclasses.replace(t, pid=i + 1) for i, t in enumerate(split.train)]
    meta = np.array([[t.camid, num(t.frames[0]), num(t.frames[-1])] for t in split.train], dtype=np.int64).reshape(-1, 3)
    return dataclasses.replace(split, train=train), meta


def train_all_splits(cfg) -> dict:
    """Train and evaluate on every split of the protocol (``data.split_id=all``), each in
    ``output_dir/split_<i>``; returns and writes per-split metrics and their mean +- std. A
    one-split protocol (MARS, DukeMTMC-VideoReID, folder) trains once in ``output_dir``."""
    from .evaluator import summarize

    ds = build_dataset_from_config(cfg.data)
    base = Path(cfg.train.output_dir)
    if ds.num_splits == 1:
        c = cfg.copy()
        c.data.split_id = 0
        per = [Trainer(c, 0).fit()]
        return {"per_split": per, "summary": summarize(per)}
    owned = ["metrics.json"] + [f"split_{s}" for s in range(ds.num_splits)]
    if base.is_dir():  # a folder of per-split runs: only its own entries may be there (engine/rundir.py)
        foreign = sorted(p.name for p in base.iterdir() if p.name not in owned and p.name != MANIFEST)
        if foreign:
            raise ConfigError(f"train.output_dir {base} holds files vidreid did not write ({', '.join(foreign[:5])}); "
                              "nothing there is replaced or deleted: choose an empty or new train.output_dir")
    if rank_world()[0] == 0:
        base.mkdir(parents=True, exist_ok=True)
        atomic_write_json(base / MANIFEST, {"run_id": None, "owned": owned, "written_by": "vidreid train (all splits)"})
    per = []
    for s in range(ds.num_splits):
        c = cfg.copy()
        c.train.output_dir = str(base / f"split_{s}")
        c.data.split_id = s
        per.append(Trainer(c, s).fit())
    out = {"per_split": per, "summary": summarize(per)}
    write_json(out, base / "metrics.json")
    return out
