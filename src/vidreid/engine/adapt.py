"""Label-free adaptation to a user's cameras (``vidreid adapt``): a model is fine-tuned on the
tracklets of the user's footage without identity labels, by per-camera tracklet discrimination
and cross-camera tracklet association (TAUDL, Li, Zhu and Gong, ECCV 2018; UTAL, TPAMI 2019:
:class:`vidreid.losses.metric.TrackletAssociationLoss`). Within one camera a track is one person
and tracks overlapping in time are different people; across cameras (and across time in one
camera) the association is learnt.

It is an ordinary training run of :class:`~vidreid.engine.trainer.Trainer` on the ``tracklets``
dataset (:mod:`vidreid.data.datasets.tracklets`) with ``train.unsupervised`` and the
association loss: :func:`adapt_config` builds that config from the starting model; the same
works on any dataset's training split (``train.unsupervised=true``, e.g. the synthetic PRID-like
training cameras, whose labels are then ignored).

Our choices (the papers train from scratch for hundreds of epochs on labelled-free benchmarks):
start from the given model; memory rows filled from its features first; 2 clips of 4
consecutive frames per tracklet; Adam at 1e-4 (backbone 0.1x), about 100 steps (epochs =
100 / batches per epoch, at least 8); association when two
tracklets are mutual nearest neighbours with a cosine of at least 0.5; learning without
forgetting (``train.distill_weight`` 10) towards the starting model, so that a wrong association
cannot pull the features far from what worked; and the pretrained BatchNorm layers' running
statistics kept (``train.freeze_bn_stats``). Without the last, adaptation on PETS 2009 lowered
rank-1 even at a learning rate of 1e-12 (only the BatchNorm statistics moved, to those of the
user's few crops; docs/RESULTS.md, ``scripts/pets_adapt.py``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import OmegaConf

from ..config import apply_overrides, from_container, load_config
from ..errors import ConfigError

ADAPT_OVERRIDES = [
    "data.dataset=tracklets", "data.split_id=0", "data.sampler=pk", "data.k=2",
    "data.train_sampling={strategy: random_consecutive, seq_len: 4, stride: 1, short: random}",
    "train.unsupervised=true", "train.lut_init=features", "train.distill_weight=10.0", "train.freeze_bn_stats=true",
    "optim={name: adam, lr: 1.0e-4, weight_decay: 5.0e-4, pretrained_lr_mult: 0.1}",
    "schedule={name: constant, epochs: 8, warmup_epochs: 0}", "stages=[]",
]


def _feature_dim(cfg) -> int:
    from ..models import create_model

    m = create_model(cfg.model.name, num_classes=2, **cfg.model.args).train()
    with torch.no_grad():
        out = m(torch.zeros(2, 2, 3, int(cfg.data.height), int(cfg.data.width)))
    return int(out.get("features").shape[1])


def adapt_config(source: str | Path, tracklets: str | Path, out: str | Path, overrides=()):
    """The training config of an adaptation run.

    Args:
        source: where to start: a vidreid checkpoint (its model and weights) or a config name /
            path (its model, e.g. ``reference/imagenet_lite0``: ImageNet features).
        tracklets: the user's tracklet folder (``vidreid tracklets`` output).
        out: the run folder (``train.output_dir``).
        overrides: ``key=value`` settings applied last (e.g. ``schedule.epochs=20``).

    Raises:
        ConfigError, CheckpointError: an unknown config, or an unreadable checkpoint.
    """
    from .checkpoint import load_checkpoint

    src = Path(source)
    init = None
    if src.is_file() and src.suffix not in (".yaml", ".yml"):
        st = load_checkpoint(src)
        cfg = from_container(st["config"])
        init = str(src)
    else:
        cfg = load_config(source)
    cfg.data.sources = []
    cfg.test.extra = cfg.test.extra or []
    cfg = apply_overrides(cfg, ADAPT_OVERRIDES + [f"data.root={tracklets}", f"train.output_dir={out}"])
    cfg.train.init_from = init
    n = None
    if Path(tracklets).is_dir():
        from ..data.datasets import TrackletFolder

        n = len(TrackletFolder(tracklets).train)
        cfg.data.p = max(2, min(16, n))
        cfg.schedule.epochs = max(8, -(-100 // max(1, n // cfg.data.p)))
    cfg = apply_overrides(cfg, list(overrides))
    if not any(str(o).startswith("loss=") for o in overrides):  # the association loss unless the caller gives one
        cfg.loss = OmegaConf.create([{"name": "tracklet_association", "input": "features", "feat_dim": _feature_dim(cfg)}])
    if n is not None and n < 2:
        raise ConfigError(f"--tracklets {tracklets}: adaptation needs at least 2 tracklets, found {n}")
    return cfg


def adapt(source: str | Path, tracklets: str | Path, out: str | Path, overrides=(), overwrite: bool = False) -> dict:
    """Adapt the model of ``source`` to the tracklets of ``tracklets`` without labels
    (:func:`adapt_config`) and write the run to ``out`` (a checkpoint ``embed`` / ``match``
    and :func:`vidreid.load` read).

    Returns:
        the run's final metrics (its ``test.extra`` sets, if any).
    """
    from .trainer import Trainer

    cfg = adapt_config(source, tracklets, out, overrides)
    return Trainer(cfg).fit(overwrite=overwrite)
