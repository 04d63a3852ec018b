"""Reports of an evaluation: the CMC curve as a PNG, and ranked-result images (``--visrank``)
like the ranked-list figures of the papers: a strip of the query's frames, then its top-K
gallery tracklets, each bordered green (same identity) or red (another identity)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..data.tracklet import ReIDSplit
from ..fileio import read_image, save_figure, write_image

GREEN, RED, WHITE = (40, 180, 40), (40, 40, 220), (255, 255, 255)  # BGR


def plot_cmc(per_split: list[dict], path: str | Path, title: str = "") -> Path:
    """Write the CMC curve (mean over splits, with a +- std band when there are several) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = np.array([r["cmc"] for r in per_split], float) * 100
    ranks = np.arange(1, curves.shape[1] + 1)
    fig, ax = plt.subplots(figsize=(5, 3.6), dpi=120)
    mean = curves.mean(0)
    ax.plot(ranks, mean, lw=2, label=f"mean of {len(curves)} splits" if len(curves) > 1 else "CMC")
    if len(curves) > 1:
        sd = curves.std(0)
        ax.fill_between(ranks, mean - sd, np.minimum(100, mean + sd), alpha=0.25, label="± std")
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.set_ylim(0, 100)
    ax.set_xlim(1, ranks[-1])
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title or "CMC")
    fig.tight_layout()
    path = save_figure(fig, path)
    plt.close(fig)
    return path


def _cell(root: Path, frames, n: int, h: int, w: int, border=None) -> np.ndarray:
    idx = np.unique(np.round(np.linspace(0, len(frames) - 1, n)).astype(int))
    imgs = []
    for i in idx:
        im = read_image(root / frames[i])
        imgs.append(cv2.resize(im, (w, h)) if im is not None else np.zeros((h, w, 3), np.uint8))
    strip = np.concatenate(imgs, 1)
    if border is not None:
        strip = cv2.copyMakeBorder(strip, 4, 4, 4, 4, cv2.BORDER_CONSTANT, value=border)
    else:
        strip = cv2.copyMakeBorder(strip, 4, 4, 4, 4, cv2.BORDER_CONSTANT, value=WHITE)
    return strip


def _label(cell: np.ndarray, lines: list[str]) -> np.ndarray:
    """``cell`` with a white band above it holding ``lines`` of small black text."""
    band = np.full((14 * len(lines) + 4, cell.shape[1], 3), 255, np.uint8)
    for k, t in enumerate(lines):
        cv2.putText(band, t, (3, 13 + 14 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([band, cell], 0)


def write_visrank(split: ReIDSplit, distmat, out_dir: str | Path, topk: int = 10, query_frames: int = 4,
                  height: int = 128, width: int = 64, max_queries: int | None = None) -> list[Path]:
    """One image per query: its frames, then the top-``topk`` gallery tracklets of its
    protocol ranking (same pid + camid excluded, ties by gallery index), green for a match,
    red otherwise, each labelled above with its rank, distance, pid and camera (the query with its
    pid and camera). Returns the written paths (``q{index}_pid{pid}.jpg`` under ``out_dir``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    g_pids = np.array([t.pid for t in split.gallery])
    g_cams = np.array([t.camid for t in split.gallery])
    paths = []
    nq = len(split.query) if max_queries is None else min(max_queries, len(split.query))
    for i in range(nq):
        q = split.query[i]
        row = np.asarray(distmat[i:i + 1])[0]
        order = np.argsort(row, kind="stable")
        order = order[~((g_pids[order] == q.pid) & (g_cams[order] == q.camid))][:topk]
        parts = [_label(_cell(split.root, q.frames, query_frames, height, width), ["query", f"pid {q.pid} cam {q.camid}"])]
        gap = np.full((parts[0].shape[0], 12, 3), 255, np.uint8)
        for r, j in enumerate(order):
            t = split.gallery[j]
            cell = _cell(split.root, t.frames, 1, height, width, GREEN if t.pid == q.pid else RED)
            parts += [gap, _label(cell, [f"#{r + 1} d {float(row[j]):.3g}", f"pid {t.pid} c{t.camid}"])]
        img = np.concatenate(parts, 1)
        p = out_dir / f"q{i:05d}_pid{q.pid}.jpg"
        write_image(p, img)
        paths.append(p)
    return paths
