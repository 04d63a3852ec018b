"""Typed configuration: a training recipe is data.

A config is a YAML file merged onto the schema below (OmegaConf structured config). A file may
start from another with ``_base_: other.yaml`` (relative to the file, or a packaged config name
such as ``baseline/prid2011``). Command-line overrides are ``key=value`` pairs in dotted form
(``optim.lr=1e-3 data.root=/data/mars``). Any key not in the schema is an error that lists the
valid keys at that level; model arguments are checked against the model builder's signature
and loss arguments against the loss class. A file that sets ``model.name`` does not inherit its
base's ``model.args`` (they belong to the base's model); dictionaries otherwise merge key by key
and lists replace.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Optional

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, ValidationError

from .errors import ConfigError

MAX_SIDE = 4096  # the largest frame side a config may ask for (pixels)


@dataclass
class SamplingConfig:
    strategy: str = "random_consecutive"  # random_consecutive | restricted_random | evenly | all
    seq_len: int = 8
    stride: int = 1
    short: str = "random"  # random_consecutive training draws on short tracklets: random (AP3D's rule) | stretch
    # test_sampling, strategy all, clip models (3D CNNs): ap3d (AP3D's test-all: consecutive clips of
    # seq_len, the last shorter) | as_trained (clips of train_sampling's seq_len and stride, every frame once:
    # data/sampling.py clip_plan; test_sampling's own seq_len and stride are then unused)
    clips: str = "ap3d"


@dataclass
class AugmentConfig:
    flip_p: float = 0.5
    pad: int = 0  # random translation in pixels (pad + crop)
    erase_p: float = 0.0  # random erasing probability
    crop: int = 0  # crop (height - crop) x (width - crop): random per clip in training, centre at test
    # appearance augmentation, drawn once per clip (data/transforms.py): colour jitter (brightness,
    # contrast, saturation by up to color_strength, hue by up to color_strength / 6), greyscale, blur
    color_p: float = 0.0
    color_strength: float = 0.3
    gray_p: float = 0.0
    blur_p: float = 0.0
    # scale: with probability zoom_p, enlarge by zoom and crop back (torchreid's Random2DTranslation)
    zoom_p: float = 0.0
    zoom: float = 1.125
    # resolution loss: with probability lowres_p, shrink every frame by a factor in [lowres, 1) and scale back
    lowres_p: float = 0.0
    lowres: float = 0.4


@dataclass
class DataConfig:
    dataset: str = "prid2011"  # prid2011 | ilidsvid | mars | dukev | folder
    root: str = "data/prid2011"
    split_id: Any = 0  # an int, or "all" (train/test every split, report mean +- std)
    height: int = 256
    width: int = 128
    min_seq_len: int = 0
    verify_files: bool = True
    num_workers: int = 2
    # how training clips cross to the device: uint8 (normalised and erased there: 4x less to copy,
    # less work per loader worker) | float (normalised by the workers) | auto (uint8 on a GPU)
    transfer: str = "auto"
    # pk (P x K identity batches) | neighbours (P x K batches of an identity and its P - 1 nearest
    # under the current model, recomputed every epoch: graph sampling, Liao and Shao, CVPR 2022;
    # data/samplers.py NeighbourBatchSampler) | pairs (one probe-gallery pair per batch, siamese)
    sampler: str = "pk"
    p: int = 8  # identities per batch (samplers pk and neighbours)
    k: int = 4  # tracklets per identity (samplers pk and neighbours)
    train_sampling: SamplingConfig = field(default_factory=SamplingConfig)
    test_sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(strategy="all", seq_len=8))
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # MARS gallery: all_test (the official evaluation and the papers: every test tracklet, the
    # queries included, minus junk) | exclude_query (torchreid's: queries removed). docs/datasets.md
    mars_gallery: str = "all_test"
    # joint training on several datasets: [{dataset, root[, split_id, mars_gallery, min_seq_len]}, ...];
    # identities relabelled disjointly, each source tested on its own protocol (vidreid.data.multisource)
    sources: list[Any] = field(default_factory=list)
    flow: Optional[str] = None  # optical-flow input: null | tvl1 | farneback | lk (cache from `vidreid flow`)


@dataclass
class ModelConfig:
    name: str = "baseline"
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    name: str = "adam"  # adam | adamw | sgd
    lr: float = 3.5e-4
    weight_decay: float = 5e-4
    momentum: float = 0.9
    nesterov: bool = False
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    pretrained_lr_mult: float = 1.0  # lr multiplier of the pretrained (backbone) parameters
    max_grad_norm: float = 0.0  # 0 disables clipping


@dataclass
class ScheduleConfig:
    name: str = "multistep"  # constant | step | multistep | cosine
    epochs: int = 60
    milestones: list[int] = field(default_factory=lambda: [40])
    step_size: int = 40
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    warmup_factor: float = 0.01
    min_lr_factor: float = 0.0  # cosine floor, as a fraction of the base lr


@dataclass
class TestConfig:
    distance: str = "euclidean"  # euclidean | cosine
    batch_size: int = 64  # frames (all-frame extraction) or clips per batch
    eval_every: int = 0  # epochs between evaluations during training (0: only at the end)
    max_rank: int = 50
    compile: bool = False  # torch.compile (Inductor, weight freezing) for all-frame extraction
    mode: str = "embedding"  # embedding | pairwise (models whose representation depends on the pair)
    rerank: bool = False  # k-reciprocal re-ranking (Zhong et al., CVPR 2017)
    rerank_k1: int = 20
    rerank_k2: int = 6
    rerank_lambda: float = 0.3
    allow_train_overlap: bool = False  # evaluate a checkpoint on test people it was trained on (else an error)
    # the mAP a recipe's paper reported, named first in reports (both are always computed; metrics/rank.py):
    # mAP (mean precision at each match: torchreid, fast-reid, AP3D) | mAP_trapezoid (compute_AP.m, the
    # official MARS / Market-1501 evaluation code)
    headline_map: str = "mAP"
    # more test sets evaluated after training and by `vidreid test` (engine/evaluator.py evaluate_extra),
    # e.g. real footage beside the synthetic benchmark: [{name, root[, dataset: folder][, frames: N]}]
    # (frames: N evenly spaced frames per tracklet instead of the test sampling)
    extra: list[Any] = field(default_factory=list)


@dataclass
class TrainConfig:
    seed: int = 0
    output_dir: str = "outputs/run"
    device: str = "auto"  # auto | cpu | cuda
    # torch's intra-op threads in the training / test process (0: torch's default, one per core;
    # -1: one per core that other processes leave idle when training starts, engine/cpu.py, which
    # `vidreid demo` uses; a resumed run measures again, so give a count to resume bit-exactly);
    # benchmarks/bench_threads.py measures what a cap does when the machine is shared
    num_threads: int = 0
    log_every: int = 10  # iterations; on a GPU the loss is also read (and checked finite) only then
    checkpoint_every: int = 1  # epochs
    channels_last: bool = True
    progress: bool = True
    overwrite: bool = False  # replace a run already in output_dir (else an error; --resume continues it)
    amp: str = "off"  # mixed precision on GPUs: off | bf16 | fp16 (fp16 with loss scaling); training and test extraction
    sync_bn: bool = False  # distributed training: SyncBatchNorm (batch statistics over the global batch)
    # start from a checkpoint's model weights (shape-matching tensors; the classifier and other
    # label-space tensors stay fresh), e.g. STAN's per-dataset "Ind" stage after joint training;
    # "{split}" in the path is replaced by the split id
    init_from: Optional[str] = None
    # how loss lookup tables (OIM) start: zeros (a fresh table), features (each identity's row
    # the mean feature of its training tracklets under the initial model), auto (features when
    # init_from gives a trained model, else zeros); see Trainer.init_lookup_tables
    lut_init: str = "auto"
    # learning without forgetting (engine/distill.py): a frozen copy of the model as it starts
    # (ImageNet or init_from weights) and a term distill_weight * || n(s) - n(t) ||^2 between the
    # L2-normalised model output distill_input of the student (s) and of that copy (t); 0: off
    distill_weight: float = 0.0
    distill_input: str = "features"
    # keep the BatchNorm layers of the pretrained backbone in eval mode while training (their
    # ImageNet / re-ID running statistics fixed; affine weights still learn): models.registry.train_mode
    freeze_bn_stats: bool = False
    # weight averaging (engine/trainer.py Trainer.use_average): from the start of this epoch (0-based)
    # on, an equal-weight running mean of the model's parameters and floating buffers (BatchNorm
    # statistics) taken after every optimiser step, which the final checkpoint and the test use
    # (SWA, Izmailov et al., UAI 2018, taken densely as in SWAD, Cha et al., NeurIPS 2021); null: off
    average_from: Optional[int] = None
    # label-free training (vidreid adapt, engine/adapt.py): every training tracklet is its own class,
    # identity labels are ignored (loss tracklet_association)
    unsupervised: bool = False


@dataclass
class StageConfig:
    """One training stage (e.g. STAN, Li et al. CVPR 2018 Sec. 4.2: CNN first, then the
    attention models with the CNN fixed, then everything but the CNN). Stages run in order,
    each with a fresh optimiser over the parameters it leaves trainable and its own schedule
    (``schedule`` with ``epochs`` and, when given, ``milestones`` replaced)."""

    name: str = "stage"
    epochs: int = 1
    lr: Optional[float] = None  # base lr of this stage (null: optim.lr)
    milestones: Optional[list[int]] = None  # multistep milestones within the stage (null: schedule.milestones)
    freeze: list[str] = field(default_factory=list)  # parameter-name prefixes kept fixed (their BN layers in eval mode)
    model_attrs: dict[str, Any] = field(default_factory=dict)  # model attributes set for the stage, e.g. {temporal: avg}
    loss: Optional[list[Any]] = None  # loss terms of the stage (null: the top-level loss)


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: list[Any] = field(default_factory=lambda: [
        {"name": "cross_entropy", "input": "logits", "weight": 1.0, "label_smoothing": 0.1},
        {"name": "triplet", "input": "features", "weight": 1.0, "margin": 0.3, "distance": "euclidean"},
    ])
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    test: TestConfig = field(default_factory=TestConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    stages: list[StageConfig] = field(default_factory=list)  # empty: one stage of schedule.epochs, nothing frozen


def packaged_config_dir() -> Path:
    return Path(str(resources.files("vidreid") / "configs"))


def resolve_config_path(name: str | Path, relative_to: Path | None = None) -> Path:
    """A config file path: an existing path (relative to ``relative_to`` first), or a packaged
    config name (``baseline/prid2011`` or ``baseline/prid2011.yaml``).

    Raises:
        ConfigError: not found (names the places looked in).
    """
    p = Path(name)
    cands = []
    if relative_to is not None and not p.is_absolute():
        cands.append(relative_to / p)
    cands.append(p)
    base = packaged_config_dir()
    cands += [base / p, base / f"{p}.yaml"]
    for c in cands:
        if c.is_file():
            return c
    raise ConfigError(f"config {name!s} not found; looked in: {[str(c) for c in cands]}")


def _key_error(e: Exception, where: str) -> ConfigError:
    msg = str(e).splitlines()[0]
    node = getattr(e, "full_key", None) or ""
    parent = node.rsplit(".", 1)[0] if "." in node else ""
    schema = OmegaConf.structured(Config)
    valid = None
    try:
        sub = OmegaConf.select(schema, parent) if parent else schema
        if isinstance(sub, DictConfig):
            valid = sorted(sub.keys())
    except Exception:
        pass
    hint = f"; valid keys{' under ' + parent if parent else ''}: {valid}" if valid is not None else ""
    return ConfigError(f"{where}: invalid key {node or msg!r} ({msg}){hint}")


def _read_yaml(path: Path, seen: tuple = ()) -> DictConfig:
    if path.resolve() in seen:
        raise ConfigError(f"{path}: _base_ cycle")
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8")) or {}
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}); a config is a UTF-8 YAML file") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    base = data.pop("_base_", None)
    cfg = OmegaConf.create(data)
    if base:
        parent = _read_yaml(resolve_config_path(base, path.parent), seen + (path.resolve(),))
        # A config that names its model starts from empty model.args: another model's arguments
        # would not fit it. (Lists, e.g. loss, replace the parent's as OmegaConf does.)
        if "name" in data.get("model", {}) and "model" in parent and "args" in parent.model:
            parent.model.args = {}
        cfg = OmegaConf.merge(parent, cfg)
    return cfg


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Schema defaults <- YAML file (with its ``_base_`` chain) <- ``key=value`` overrides.

    Raises:
        ConfigError: unknown key (lists the valid ones), wrong type, malformed override.
    """
    cfg = OmegaConf.structured(Config)
    if path is not None:
        p = resolve_config_path(path)
        try:
            cfg = OmegaConf.merge(cfg, _read_yaml(p))
        except (ConfigKeyError, ConfigAttributeError) as e:
            raise _key_error(e, str(p)) from e
        except ValidationError as e:
            raise ConfigError(f"{p}: {str(e).splitlines()[0]}") from e
    return apply_overrides(cfg, overrides)


def apply_overrides(cfg: DictConfig, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """``key=value`` overrides on top of ``cfg`` (values containing ``#`` or ``$`` are taken
    literally), then :func:`validate_config`.

    Raises:
        ConfigError: unknown key, wrong type, malformed override, invalid value.
    """
    for ov in overrides:
        if "=" not in ov:
            raise ConfigError(f"override {ov!r}: expected key=value (e.g. optim.lr=0.001)")
        key, raw = ov.split("=", 1)
        try:
            if "#" in raw or "$" in raw:
                # taken literally: YAML would cut the value at " #" and OmegaConf would read
                # "${...}" as an interpolation (a path may hold either)
                OmegaConf.update(cfg, key, _escape(raw), merge=True)
            else:
                cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist([ov]))
        except (ConfigKeyError, ConfigAttributeError) as e:
            raise _key_error(e, f"override {key}") from e
        except ValidationError as e:
            raise ConfigError(f"override {ov!r}: {str(e).splitlines()[0]}") from e
        except yaml.YAMLError as e:  # e.g. a !!python tag: refused by the safe loader, nothing runs
            raise ConfigError(f"override {key}: not a plain YAML value ({' '.join(str(e).split())[:160]})") from None
        except TypeError as e:  # e.g. a dotted index into a list (stages.0.loss=...)
            raise ConfigError(f"override {ov!r}: {e}; a list is replaced whole (e.g. stages=[...]), "
                              "not addressed by index") from e
    return validate_config(cfg)


def validate_config(cfg: DictConfig) -> DictConfig:
    """Check the values whose mistakes would otherwise surface deep inside a run as a
    traceback (a zero size reaching OpenCV, a negative learning rate, a split that does not
    exist...).

    Raises:
        ConfigError: the first invalid value, naming its key and the valid range.
    """
    def need(ok: bool, key: str, what: str):
        if not ok:
            raise ConfigError(f"{key}: {what}, got {OmegaConf.select(cfg, key)!r}")

    d, o, s, t, tr = cfg.data, cfg.optim, cfg.schedule, cfg.test, cfg.train
    for key in ("data.p", "data.k"):
        need(OmegaConf.select(cfg, key) >= 1, key, "must be >= 1")
    for key in ("data.height", "data.width"):  # an upper bound before anything is allocated
        need(16 <= OmegaConf.select(cfg, key) <= MAX_SIDE, key, f"must be between 16 and {MAX_SIDE} pixels")
    need(d.p * d.k <= 4096, "data.p", "data.p x data.k (clips per batch) must be <= 4096")
    need(d.min_seq_len >= 0, "data.min_seq_len", "must be >= 0")
    need(d.num_workers >= 0, "data.num_workers", "must be >= 0")
    need(-1 <= tr.num_threads <= 1024, "train.num_threads",
         "must be -1 (one per idle core), 0 (torch's default) or a count up to 1024")
    need(d.split_id == "all" or (isinstance(d.split_id, int) and not isinstance(d.split_id, bool) and d.split_id >= 0),
         "data.split_id", "must be a split number >= 0 or 'all'")
    need(d.mars_gallery in ("all_test", "exclude_query"), "data.mars_gallery", "must be all_test or exclude_query")
    need(d.sampler in ("pk", "neighbours", "pairs"), "data.sampler", "must be pk, neighbours or pairs")
    need(d.transfer in ("auto", "uint8", "float"), "data.transfer", "must be auto, uint8 or float")
    need(d.test_sampling.clips in ("ap3d", "as_trained"), "data.test_sampling.clips", "must be ap3d or as_trained")
    for key in ("data.train_sampling", "data.test_sampling"):
        for f in ("seq_len", "stride"):
            need(1 <= OmegaConf.select(cfg, f"{key}.{f}") <= 10000, f"{key}.{f}", "must be between 1 and 10000")
    for key in ("data.augment.flip_p", "data.augment.erase_p", "data.augment.color_p", "data.augment.gray_p",
                "data.augment.blur_p", "data.augment.zoom_p", "data.augment.lowres_p"):
        need(0.0 <= OmegaConf.select(cfg, key) <= 1.0, key, "must be a probability in [0, 1]")
    need(d.augment.pad >= 0 and d.augment.crop >= 0, "data.augment.pad", "pad and crop must be >= 0")
    need(0.0 <= d.augment.color_strength <= 1.0, "data.augment.color_strength", "must be in [0, 1]")
    need(1.0 <= d.augment.zoom <= 2.0, "data.augment.zoom", "must be an enlargement factor in [1, 2]")
    need(0.1 <= d.augment.lowres < 1.0, "data.augment.lowres", "must be a down-scaling factor in [0.1, 1)")
    need(tr.average_from is None or (isinstance(tr.average_from, int) and not isinstance(tr.average_from, bool)
                                     and tr.average_from >= 0), "train.average_from", "must be null or an epoch >= 0")
    need(tr.distill_weight >= 0 and math.isfinite(tr.distill_weight), "train.distill_weight", "must be a finite number >= 0")
    need(d.augment.crop < min(d.height, d.width), "data.augment.crop", "must be smaller than the frame")
    need(o.lr > 0 and math.isfinite(o.lr), "optim.lr", "must be a finite number > 0")
    need(len(o.betas) == 2 and all(0.0 <= b < 1.0 for b in o.betas), "optim.betas", "must be two numbers in [0, 1)")
    need(o.name in ("adam", "adamw", "sgd"), "optim.name", "must be adam, adamw or sgd")
    for i, st in enumerate(cfg.stages):
        need(st.epochs >= 1, f"stages.{i}.epochs", "must be >= 1")
        need(st.lr is None or (st.lr > 0 and math.isfinite(st.lr)), f"stages.{i}.lr", "must be null or a finite number > 0")
    need(o.weight_decay >= 0, "optim.weight_decay", "must be >= 0")
    need(0.0 <= o.momentum < 1.0, "optim.momentum", "must be in [0, 1)")
    need(o.pretrained_lr_mult >= 0, "optim.pretrained_lr_mult", "must be >= 0")
    need(o.max_grad_norm >= 0, "optim.max_grad_norm", "must be >= 0 (0 disables clipping)")
    need(s.epochs >= 1, "schedule.epochs", "must be >= 1")
    need(s.warmup_epochs >= 0, "schedule.warmup_epochs", "must be >= 0")
    need(0 < s.gamma <= 1, "schedule.gamma", "must be in (0, 1]")
    need(1 <= t.batch_size <= 65536, "test.batch_size", "must be between 1 and 65536")
    need(t.max_rank >= 1, "test.max_rank", "must be >= 1")
    need(t.rerank_k1 >= 1 and t.rerank_k2 >= 1, "test.rerank_k1", "rerank_k1 and rerank_k2 must be >= 1")
    need(0.0 <= t.rerank_lambda <= 1.0, "test.rerank_lambda", "must be in [0, 1]")
    need(t.distance in ("euclidean", "cosine"), "test.distance", "must be euclidean or cosine")
    need(t.mode in ("embedding", "pairwise"), "test.mode", "must be embedding or pairwise")
    need(t.headline_map in ("mAP", "mAP_trapezoid"), "test.headline_map", "must be mAP or mAP_trapezoid")
    need(tr.log_every >= 1, "train.log_every", "must be >= 1")
    need(bool(re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", str(tr.device))), "train.device", "must be auto, cpu, cuda, cuda:N or mps")
    if str(tr.amp).lower() in ("false", "off", "none", "no"):  # YAML reads a bare off as false
        tr.amp = "off"
    need(tr.amp in ("off", "bf16", "fp16"), "train.amp", "must be off, bf16 or fp16")
    need(tr.lut_init in ("auto", "zeros", "features"), "train.lut_init", "must be auto, zeros or features")
    need(tr.checkpoint_every >= 1, "train.checkpoint_every", "must be >= 1")
    return cfg


def _escape(obj):
    """Strings with "${" escaped so OmegaConf keeps them literal (recursively)."""
    if isinstance(obj, str):
        return obj.replace("${", "\\${")
    if isinstance(obj, dict):
        return {k: _escape(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_escape(v) for v in obj]
    return obj


def to_container(cfg: DictConfig) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)


def from_container(d: dict) -> DictConfig:
    """The inverse of :func:`to_container` (plain values, e.g. from a checkpoint; strings are
    literal)."""
    return OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.create(_escape(d)))
