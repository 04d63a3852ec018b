"""Looking inside a trained model on one tracklet (``vidreid visualize``).

* ``attention``: STAN's receptive fields (Li et al., CVPR 2018, Fig. 3): the sampled frames in
  the top row, then one row per spatial attention model with its receptive field over the
  frame and the part's temporal attention weight in the title.
* ``features``: raw and refined feature-map responses side by side (RRU, Liu et al., AAAI
  2019, Fig. 3): per frame, the channel-mean of the backbone map X_t and of the refined map
  S_t, each over the frame.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.datasets.common import IMAGE_EXTS, frame_number
from ..data.sampling import TemporalSampler
from ..data.video import read_frame
from ..errors import DatasetError
from ..fileio import save_figure
from .evaluator import make_test_transform


def tracklet_frames(path: str | Path) -> list[Path]:
    """The image files of a tracklet folder, ordered by the last number in their names (name
    order for ties or names without digits).

    Raises:
        DatasetError: not a folder, or no image in it.
    """
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"--tracklet {path}: expected a folder of frame images")
    files = [p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTS and not p.name.startswith(".")]
    if not files:
        raise DatasetError(f"--tracklet {path}: no image ({', '.join(IMAGE_EXTS)}) in the folder")

    def key(p: Path):
        try:
            return (frame_number(p.name), p.name)
        except ValueError:  # no digits in the name
            return (-1, p.name)

    return sorted(files, key=key)


def load_clip(path: str | Path, cfg, model) -> tuple[torch.Tensor, np.ndarray]:
    """A test clip of a tracklet folder as the config samples and normalises it.

    Returns:
        clip float (1, T, 3, H, W) for the model, and the frames uint8 (T, H, W, 3) for display.
        ``all`` test sampling is replaced by ``evenly`` with its seq_len (a fixed-length clip).
    """
    files = tracklet_frames(path)
    ts = cfg.data.test_sampling
    strategy = "evenly" if ts.strategy == "all" else ts.strategy
    idx = TemporalSampler(strategy, ts.seq_len, train=False, stride=ts.stride)(len(files))
    d = cfg.data
    frames = np.stack([read_frame(files[i], d.height, d.width) for i in idx])
    tf = make_test_transform(cfg, model)
    clip, _ = tf(frames, tf.draw(None))
    return clip[None], frames


def _upsample(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    t = torch.as_tensor(maps, dtype=torch.float32).flatten(0, -3)[:, None]
    up = torch.nn.functional.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)
    return up[:, 0].reshape(*maps.shape[:-2], height, width).numpy()


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, title: str, out: str | Path) -> Path:
    """Title, lay out, write (parents created) and close a figure."""
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    out = save_figure(fig, out, dpi=110)
    _pyplot().close(fig)
    return out


def plot_attention(frames: np.ndarray, spatial: np.ndarray, temporal: np.ndarray, out: str | Path) -> Path:
    """Write the receptive-field figure.

    Args:
        frames: uint8 (T, H, W, 3).
        spatial: (T, K, h, w) receptive fields (each sums to 1 over h*w).
        temporal: (T, K) temporal attention weights.
        out: PNG path (parents created).
    """
    plt = _pyplot()
    T, K = spatial.shape[:2]
    H, W = frames.shape[1:3]
    up = _upsample(spatial, H, W)
    fig, axes = plt.subplots(K + 1, T, figsize=(1.1 * T + 0.4, 2.1 * (K + 1)), squeeze=False)
    for n in range(T):
        axes[0, n].imshow(frames[n])
        axes[0, n].set_title(f"frame {n}", fontsize=7)
        for k in range(K):
            a = up[n, k]
            axes[k + 1, n].imshow(frames[n])
            axes[k + 1, n].imshow(a / max(a.max(), 1e-12), cmap="jet", alpha=0.5, vmin=0, vmax=1)
            axes[k + 1, n].set_title(f"part {k + 1}  t={temporal[n, k]:.2f}", fontsize=6)
    for ax in axes.flat:
        ax.axis("off")
    return _save(fig, "spatial attention (receptive fields) and temporal weights", out)


def plot_feature_maps(frames: np.ndarray, raw: np.ndarray, refined: np.ndarray, out: str | Path) -> Path:
    """Write raw vs refined feature-map responses (channel means), one column per frame.

    Args:
        frames: uint8 (T, H, W, 3); raw, refined: (T, h, w) responses.
    """
    plt = _pyplot()
    T = len(frames)
    H, W = frames.shape[1:3]
    rows = [("frame", None), ("raw X_t", _upsample(raw, H, W)), ("refined S_t", _upsample(refined, H, W))]
    fig, axes = plt.subplots(3, T, figsize=(1.1 * T + 0.4, 6.3), squeeze=False)
    for r, (label, maps) in enumerate(rows):
        for n in range(T):
            ax = axes[r, n]
            ax.imshow(frames[n])
            if maps is not None:
                m = maps[n] - maps[n].min()
                ax.imshow(m / max(m.max(), 1e-12), cmap="jet", alpha=0.55, vmin=0, vmax=1)
            ax.set_title(f"{label} {n}", fontsize=6)
            ax.axis("off")
    return _save(fig, "feature-map responses: raw vs refined", out)


def map_changes(maps: torch.Tensor) -> list[float]:
    """Relative frame-to-frame change ||M_t - M_{t-1}|| / ||M_{t-1}|| of (T, ...) maps, t = 1..T-1."""
    return [float((maps[t] - maps[t - 1]).norm() / maps[t - 1].norm().clamp_min(1e-12)) for t in range(1, len(maps))]


@torch.no_grad()
def visualize(kind: str, model, cfg, tracklet: str | Path, out: str | Path) -> tuple[Path, dict]:
    """Run ``model`` on one tracklet folder and write the figure of ``kind``.

    Returns:
        (the PNG path, a dict of numbers behind the figure: for ``features``, ``raw_change`` and
        ``refined_change``, the :func:`map_changes` of X and S; for ``attention``, the
        ``temporal_attention`` weights (T x K)).

    Raises:
        ValueError: the model does not return what ``kind`` needs (names the aux keys needed).
    """
    model.eval()
    clip, frames = load_clip(tracklet, cfg, model)
    o = model(clip)
    if kind == "attention":
        if "spatial_attention" not in o.aux:
            raise ValueError(f"visualize attention: model {type(model).__name__} returns no 'spatial_attention' "
                             "(a STAN model does)")
        s = o.aux["spatial_attention"][0].float().numpy()
        t = o.aux.get("temporal_attention", torch.full(s.shape[:2], 1.0 / s.shape[0])[None])[0].float().numpy()
        return plot_attention(frames, s, t, out), {"temporal_attention": t.round(3).tolist()}
    if kind == "features":
        if "raw_maps" not in o.aux or "refined_maps" not in o.aux:
            raise ValueError(f"visualize features: model {type(model).__name__} returns no 'raw_maps'/'refined_maps' "
                             "(an rru_stim model does)")
        X, S = o.aux["raw_maps"][0].float(), o.aux["refined_maps"][0].float()
        info = {"raw_change": [round(v, 3) for v in map_changes(X)],
                "refined_change": [round(v, 3) for v in map_changes(S)]}
        return plot_feature_maps(frames, X.mean(1).numpy(), S.mean(1).numpy(), out), info
    raise ValueError(f"visualize: unknown kind {kind!r}; valid: ['attention', 'features']")
