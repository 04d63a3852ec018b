"""The Python API: what ``import vidreid`` offers (re-exported by ``vidreid/__init__.py``).

    import vidreid
    model = vidreid.load("runs/x/checkpoint.pt")            # or vidreid.load("baseline/prid2011", weights="w.pt")
    emb = model.embed(["cam1/000007", "cam2/000012"])       # float32 (N, D)
    idx, dist = vidreid.rank(emb[:1], emb[1:], metric=model.metric, topk=5)

A thin layer: the test protocol of the model's config (transform, temporal sampling, all-frame
streaming) comes from :mod:`vidreid.inference.features` and :mod:`vidreid.engine.evaluator`,
exactly as ``vidreid test`` uses it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .errors import ConfigError, DatasetError, NonFiniteError

__all__ = ["ReIDModel", "load", "distance", "rank"]


def _as_frames(item, k: int) -> tuple[str, ...] | np.ndarray:
    """One tracklet: a folder of images, a list of image paths, or a uint8 array (T, H, W, 3)."""
    from .inference.tracks import ordered_images

    if isinstance(item, np.ndarray) or isinstance(item, torch.Tensor):
        a = item.numpy() if isinstance(item, torch.Tensor) else item
        if a.dtype != np.uint8 or a.ndim != 4 or a.shape[-1] != 3 or len(a) == 0:
            raise DatasetError(f"tracklet {k}: expected a uint8 RGB array (T, H, W, 3) with T >= 1, "
                               f"got {a.dtype} {tuple(a.shape)}")
        return a
    if isinstance(item, (str, Path)):
        p = Path(item)
        if not p.is_dir():
            raise DatasetError(f"tracklet {k}: {p} is not a folder of frames")
        imgs = [x for _, x in ordered_images(p)]
        if not imgs:
            raise DatasetError(f"tracklet {k}: no images in {p}")
        return tuple(str(x.resolve()) for x in imgs)
    if isinstance(item, (list, tuple)) and item:
        if all(isinstance(x, (str, Path)) for x in item):
            missing = [str(x) for x in item if not Path(x).is_file()]
            if missing:
                raise DatasetError(f"tracklet {k}: missing frame file {missing[0]}")
            return tuple(str(Path(x).resolve()) for x in item)
        if all(isinstance(x, np.ndarray) for x in item):
            shapes = sorted({tuple(x.shape) for x in item})
            if len(shapes) > 1:  # frames are resized later; a list of arrays must agree to be stacked
                raise DatasetError(f"tracklet {k}: its frames have different shapes {shapes[:3]}; give equal-size "
                                   "arrays (or frame files, which may differ in size)")
            return _as_frames(np.stack(item), k)
    raise DatasetError(f"tracklet {k}: expected a folder, a list of frame paths or a uint8 array (T, H, W, 3), "
                       f"got {type(item).__name__}")


class ReIDModel:
    """A trained model with its test protocol. Made by :func:`load`.

    Attributes:
        model: the ``torch.nn.Module`` (eval mode).
        cfg: its configuration (OmegaConf): input size, test sampling, distance.
        device: where it runs.
        metric: the distance its config evaluates with (``euclidean`` or ``cosine``).
    """

    def __init__(self, model: torch.nn.Module, cfg, device: torch.device, checkpoint: str | None = None):
        self.model, self.cfg, self.device, self.checkpoint = model.eval().to(device), cfg, device, checkpoint
        self.metric = str(cfg.test.distance)

    def __repr__(self) -> str:
        return (f"ReIDModel({self.cfg.model.name}, input {self.cfg.data.height}x{self.cfg.data.width}, "
                f"test sampling {self.cfg.data.test_sampling.strategy}, device {self.device})")

    @torch.inference_mode()
    def embed(self, tracklets: Sequence, batch_size: int | None = None, num_workers: int | None = None,
              progress: bool | None = None) -> torch.Tensor:
        """Embeddings of tracklets under the model's own test protocol.

        Args:
            tracklets: N tracklets, each a folder of frame images (ordered by the number that
                ends each file name), a list of frame paths (in order), or uint8 RGB frames:
                an array (T, H, W, 3) or a list of (H, W, 3) arrays. Any frame size: frames
                are resized to the config's ``data.height`` x ``data.width``.
            batch_size: frames (or clips) per forward pass; default ``test.batch_size``.
            num_workers: decode workers; default ``data.num_workers``.
            progress: a progress bar; default on for more than 200 tracklets.

        Returns:
            float32 tensor (N, D) on the CPU, in the order given.

        Raises:
            DatasetError: an item that is none of the above, a missing or undecodable frame
                (named).
            ConfigError: the model takes optical flow (``data.flow``), which is computed per
                dataset (``vidreid flow``), not from raw frames here; a batch_size below 1 or
                num_workers below 0.
            NonFiniteError: the model gives NaN or infinite embeddings (names the tracklets).
        """
        if self.cfg.data.flow:
            raise ConfigError(f"data.flow={self.cfg.data.flow}: this model takes optical flow, which embed() does not "
                              "compute from raw frames; evaluate it on a dataset with `vidreid flow` + `vidreid test`")
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ConfigError(f"embed: batch_size must be an integer >= 1, got {batch_size!r}")
        if num_workers is not None and (not isinstance(num_workers, int) or num_workers < 0):
            raise ConfigError(f"embed: num_workers must be an integer >= 0, got {num_workers!r}")
        from .data.tracklet import Tracklet
        from .fileio import encode_image
        from .engine.evaluator import amp_dtype, autocast, make_test_transform, test_sampler
        from .inference.features import extract_features

        items = [_as_frames(x, k) for k, x in enumerate(tracklets)]
        if not items:
            raise DatasetError("embed: no tracklets given")
        cfg = self.cfg
        with tempfile.TemporaryDirectory(prefix="vidreid_embed_") as tmp:
            tr = []
            for k, it in enumerate(items):
                if isinstance(it, np.ndarray):  # written losslessly so that arrays take the files' exact path
                    import cv2

                    d = Path(tmp) / f"{k:06d}"
                    d.mkdir()
                    frames = []
                    for i, f in enumerate(it):
                        p = d / f"{i:06d}.png"
                        try:
                            p.write_bytes(encode_image(cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2BGR), ".png"))
                        except OSError as e:
                            raise DatasetError(f"tracklet {k}: cannot write a temporary frame to {p}: {e}") from None
                        frames.append(str(p))
                    it = tuple(frames)
                tr.append(Tracklet(tuple(it), -1, -1, f"tracklet_{k}"))
            with autocast(self.device, amp_dtype(cfg.train.amp, self.device)):
                emb = extract_features(
                    self.model, "/", tr, test_sampler(cfg),
                    make_test_transform(cfg, self.model), batch_size=batch_size or cfg.test.batch_size,
                    num_workers=cfg.data.num_workers if num_workers is None else num_workers, device=self.device,
                    channels_last=cfg.train.channels_last, progress=len(tr) > 200 if progress is None else progress)
        bad = torch.nonzero(~torch.isfinite(emb).all(1)).flatten().tolist()
        if bad:
            raise NonFiniteError(f"the model gives NaN or infinite embeddings for {len(bad)} of {len(emb)} tracklets "
                                 f"(e.g. tracklet {bad[0]}): its weights have diverged")
        return emb

    __call__ = embed

    @property
    def embedding_dim(self) -> int:
        """D, the length of an embedding."""
        c, h, w = 3, int(self.cfg.data.height), int(self.cfg.data.width)
        x = np.zeros((1, h, w, c), np.uint8)
        return int(self.embed([x], num_workers=0).shape[1])


def load(source: str | Path, weights: str | Path | None = None, device: str = "auto",
         overrides: Sequence[str] = ()) -> ReIDModel:
    """Load a model for inference.

    Args:
        source: a checkpoint written by ``vidreid train`` (it carries its config); a config (a
            packaged name such as ``baseline/prid2011`` or a YAML path) with ``weights``; or
            ``torchreid:ARCH`` (``osnet_x1_0``, ``osnet_ain_x1_0``, ``resnet50`` ...:
            :mod:`vidreid.models.zoo`) with a torchreid model-zoo file as ``weights``: each
            frame's torchreid eval-mode feature, averaged over the tracklet.
        weights: with a config: a vidreid checkpoint or a plain ``state_dict`` file (loaded
            with ``weights_only=True``); with ``torchreid:``, a torchreid weights file (bare
            state dict or its ``save_checkpoint`` dict). None gives the untrained model.
        device: ``auto`` (a GPU when there is one), ``cpu``, ``cuda``, ``cuda:1``...
        overrides: ``key=value`` settings applied on top of the config (e.g. ``test.batch_size=32``).

    Raises:
        CheckpointError: a missing, corrupt or unsafe checkpoint; ConfigError: an unknown
            config or key, or weights that do not fit the model (names the first keys).
    """
    from .config import apply_overrides, load_config
    from .engine.checkpoint import CheckpointError, load_checkpoint
    from .engine.evaluator import pick_device
    from .engine.trainer import load_model_from_checkpoint
    from .models import create_model

    src = Path(source)
    ckpt = None
    if str(source).startswith("torchreid:"):
        arch = str(source).split(":", 1)[1]
        cfg = load_config("torchreid/frame_avg", [f"model.args.arch={arch}", *overrides])
        if weights is not None:
            cfg.model.args.weights = str(weights)
        model = create_model(cfg.model.name, num_classes=0, **cfg.model.args)
        return ReIDModel(model, cfg, pick_device(device if device != "auto" else cfg.train.device),
                         str(weights) if weights is not None else None)
    if src.suffix in (".pt", ".pth", ".ckpt") or (src.is_file() and src.suffix not in (".yaml", ".yml")):
        if weights is not None:
            raise ConfigError("load: weights= goes with a config name, not with a checkpoint (it has its own weights)")
        model, ckcfg, _ = load_model_from_checkpoint(src)
        cfg = apply_overrides(ckcfg, list(overrides))
        ckpt = str(src)
    else:
        cfg = load_config(source, list(overrides))
        model = create_model(cfg.model.name, num_classes=0, **cfg.model.args)
        if weights is not None:
            try:
                st = load_checkpoint(weights)["model"]
            except CheckpointError as e:
                if "not a vidreid checkpoint" not in str(e):
                    raise
                st = torch.load(weights, map_location="cpu", weights_only=True)
            st = {k: v for k, v in st.items() if not k.startswith("classifier.")}
            missing, unexpected = model.load_state_dict(st, strict=False)
            missing = [k for k in missing if not k.startswith("classifier.")]
            if missing or unexpected:
                raise ConfigError(f"weights {weights} do not fit {cfg.model.name} of {source}: "
                                  f"missing {missing[:4]}, unexpected {unexpected[:4]}")
            ckpt = str(weights)
    return ReIDModel(model, cfg, pick_device(device if device != "auto" else cfg.train.device), ckpt)


def distance(query, gallery, metric: str = "euclidean") -> torch.Tensor:
    """Pairwise distances between embeddings.

    Args:
        query: (Q, D) float tensor or array; gallery: (G, D).
        metric: ``euclidean`` or ``cosine`` (1 - cosine similarity), as ``test.distance``.

    Returns:
        float32 tensor (Q, G).

    Raises:
        ConfigError: different D, an unknown metric, or NaN / infinite embeddings (named).
    """
    from .losses.metric import pairwise_distance

    q, g = torch.as_tensor(query).float(), torch.as_tensor(gallery).float()
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise ConfigError(f"distance: expected (Q, D) and (G, D) with the same D, got {tuple(q.shape)} and {tuple(g.shape)}")
    if metric not in ("euclidean", "cosine"):
        raise ConfigError(f"distance: metric must be euclidean or cosine, got {metric!r}")
    for what, x in (("query", q), ("gallery", g)):
        bad = torch.nonzero(~torch.isfinite(x).all(1)).flatten()
        if len(bad):
            raise ConfigError(f"distance: {len(bad)} {what} embeddings hold NaN or infinite values (rows {bad[:5].tolist()})")
    return pairwise_distance(q, g, metric)


def rank(query, gallery, metric: str = "euclidean", topk: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank the gallery for every query by distance (ties: lower gallery index first).

    Args:
        query: (Q, D); gallery: (G, D); metric: as :func:`distance`.
        topk: keep the first ``topk`` (default: all G).

    Returns:
        ``(indices, distances)``: int64 (Q, k) gallery indices, nearest first, and their float32
        distances (Q, k).

    Raises:
        ConfigError: ``topk`` below 1, or as :func:`distance`.
    """
    if topk is not None and (isinstance(topk, bool) or int(topk) != topk or topk < 1):
        raise ConfigError(f"rank: topk must be an integer >= 1 (or None for all), got {topk!r}")
    d = distance(query, gallery, metric)
    k = d.shape[1] if topk is None else min(int(topk), d.shape[1])
    order = torch.sort(d, dim=1, stable=True).indices[:, :k]
    return order, torch.gather(d, 1, order)
