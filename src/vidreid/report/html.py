"""One self-contained HTML page of ranked lists (and identities formed), filled from a Jinja2
template (``templates/report.html.j2``).

The page holds its data as JSON and draws 50 queries at a time (pages, filters and sorting run
in the browser, so 1,980 MARS queries stay usable): each query's frames as a strip, its top-K
gallery tracklets with rank, distance, camera and pid, bordered green (same person) or red
(another); a filter by query name, camera and rank-1 correct / wrong; sorting by query, rank-1
distance or first correct rank; the summary metrics and the CMC curve (inline SVG); with an
assignment, one row per identity of its tracklets across cameras.

A query's mark is its rank-1 item under the protocol that produced the metrics (``vidreid test``:
gallery items of the query's pid and camera are junk and left out, as in
:func:`vidreid.metrics.rank.evaluate_rank`), so the share of queries marked correct among those
with a true match is the rank-1 the metrics report. Queries or galleries without known pids are
"unlabelled"; queries with no true match in the gallery are "no match" (the metrics skip them).
"""

from __future__ import annotations

import html as _html
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import ConfigError
from ..fileio import atomic_write_text, read_image, write_image
from ..metrics.rank import protocol_ranking

PAGE_SIZE = 50


@dataclass
class ReportQuery:
    """One query of the report. ``matches``: dicts ``rank``, ``name``, ``camera``, ``pid``,
    ``distance``, ``thumb`` and ``correct`` (True / False / None unknown), nearest first."""

    name: str
    camera: str
    pid: int
    thumb: str
    status: str  # correct | wrong | no_match | unlabelled
    first_correct_rank: int | None
    matches: list[dict] = field(default_factory=list)


class Thumbnails:
    """Writes one JPEG strip per tracklet under ``files`` (once per tracklet and frame count)."""

    def __init__(self, files: Path, height: int = 96, width: int = 48):
        self.files, self.h, self.w = files, height, width
        self.done: dict[tuple[str, int], str] = {}
        files.mkdir(parents=True, exist_ok=True)

    def __call__(self, key: str, frames: list, n: int) -> str:
        k = (key, n)
        if k not in self.done:
            idx = np.unique(np.round(np.linspace(0, len(frames) - 1, n)).astype(int)) if frames else []
            imgs = []
            for i in idx:
                im = read_image(frames[i])
                imgs.append(cv2.resize(im, (self.w, self.h)) if im is not None else np.zeros((self.h, self.w, 3), np.uint8))
            strip = np.concatenate(imgs, 1) if imgs else np.zeros((self.h, self.w, 3), np.uint8)
            name = f"t{len(self.done):06d}.jpg"
            write_image(self.files / name, strip, [cv2.IMWRITE_JPEG_QUALITY, 80])
            self.done[k] = f"{FILES}/{name}"  # where write_report puts the folder
        return self.done[k]


def build_queries_from_distances(distmat, q_names, q_cams, q_pids, q_frames, g_names, g_cams, g_pids, g_frames,
                                 thumbs: Thumbnails, topk: int = 10, junk_same_camera: bool = True,
                                 query_frames: int = 3) -> list[ReportQuery]:
    """The report's queries from a (Q, G) distance matrix (rows converted one at a time).

    Args:
        q_frames, g_frames: per tracklet, the list of its frame paths.
        junk_same_camera: leave out gallery items of the query's pid and camera (the test protocol).
    """
    gp, gc = np.asarray(g_pids), np.asarray(g_cams)
    labelled = (np.asarray(g_pids) >= 0).any()
    out = []
    for i in range(len(q_names)):
        row = np.asarray(distmat[i:i + 1], np.float64)[0]
        order = protocol_ranking(row, q_pids[i], q_cams[i], gp, gc, junk_same_camera)
        known = labelled and q_pids[i] >= 0
        true = order[gp[order] == q_pids[i]] if known else order[:0]
        first = int(np.flatnonzero(gp[order] == q_pids[i])[0]) + 1 if known and len(true) else None
        status = "unlabelled" if not known else ("no_match" if first is None else ("correct" if first == 1 else "wrong"))
        ms = [{"rank": r + 1, "name": str(g_names[j]), "camera": str(g_cams[j]), "pid": int(gp[j]),
               "distance": float(row[j]), "thumb": thumbs(f"g:{g_names[j]}", list(g_frames[j]), 1),
               "correct": (bool(gp[j] == q_pids[i]) if known else None)} for r, j in enumerate(order[:topk])]
        out.append(ReportQuery(str(q_names[i]), str(q_cams[i]), int(q_pids[i]),
                               thumbs(f"q:{q_names[i]}", list(q_frames[i]), query_frames), status, first, ms))
    return out


def _cmc_svg(cmc) -> str | None:
    if cmc is None or len(cmc) == 0:
        return None
    c = np.asarray(cmc, float)[:50] * 100
    n = len(c)
    w, h, pad = 360, 220, 32
    xs = [pad + (w - 2 * pad) * (i / max(1, n - 1)) for i in range(n)]
    ys = [h - pad - (h - 2 * pad) * v / 100 for v in c]
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys))
    ticks = "".join(f'<text x="{pad - 6}" y="{h - pad - (h - 2 * pad) * v / 100 + 4:.1f}" text-anchor="end">{v}</text>'
                    for v in (0, 50, 100))
    return (f'<svg id="cmc" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="CMC curve">'
            f'<rect x="{pad}" y="{pad}" width="{w - 2 * pad}" height="{h - 2 * pad}" fill="none" stroke="#ccc"/>'
            f'{ticks}<text x="{w / 2}" y="{h - 6}" text-anchor="middle">rank 1 .. {n}</text>'
            f'<polyline points="{pts}" fill="none" stroke="#1f6feb" stroke-width="2"/></svg>')


FILES = "report_files"
_THUMB = re.compile(r"t\d{6}\.jpg")


def start_report(out_dir: str | Path, overwrite: bool = False) -> Thumbnails:
    """Check that ``out_dir`` may take a report and return the thumbnail writer, which writes
    into a temporary folder there (:func:`write_report` puts it in place).

    Raises:
        ConfigError: ``report.html`` or ``report_files`` exists without ``overwrite``, or
            ``report_files`` holds files vidreid did not write (never replaced).
    """
    import tempfile

    out = Path(out_dir)
    page, files = out / "report.html", out / FILES
    if (page.exists() or files.exists()) and not overwrite:
        raise ConfigError(f"{page if page.exists() else files} already exists (an earlier --report); pass --overwrite "
                          "or another --out")
    if files.exists() and (not files.is_dir() or any(not _THUMB.fullmatch(p.name) for p in files.iterdir())):
        raise ConfigError(f"{files} holds files vidreid's report did not write; not replaced")
    out.mkdir(parents=True, exist_ok=True)
    return Thumbnails(Path(tempfile.mkdtemp(dir=out, prefix=f".{FILES}.")))


def write_report(out_dir: str | Path, queries: list[ReportQuery], title: str, summary: dict | None = None,
                 cmc=None, identities: list[dict] | None = None, thumbs: Thumbnails | None = None,
                 notes: list[str] | None = None) -> Path:
    """Write ``out_dir/report.html`` and move the thumbnails of ``thumbs`` (from
    :func:`start_report`) to ``out_dir/report_files``.

    Args:
        queries: from :func:`build_queries_from_distances` (or built by hand).
        title: the page title (e.g. the model and dataset).
        summary: metric name -> value, shown as a table (numbers in [0, 1] shown as percentages).
        cmc: the CMC curve (fractions), or None.
        identities: with an assignment: per identity ``{"identity": int, "tracklets": [{"name",
            "camera", "pid", "thumb"}]}``.
        notes: lines shown under the title (e.g. the assignment threshold and its statistics).

    Returns:
        the page's path.
    """
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("vidreid.report", "templates"), autoescape=select_autoescape(["html", "j2"]))
    counts = {s: sum(q.status == s for q in queries) for s in ("correct", "wrong", "no_match", "unlabelled")}
    rows = []
    for k, v in (summary or {}).items():
        if isinstance(v, float):
            v = f"{100 * v:.1f}" if 0.0 <= v <= 1.0 and k not in ("threshold",) else f"{v:.4g}"
        rows.append((k, v))
    page = env.get_template("report.html.j2").render(
        title=title, summary=rows, cmc_svg=_cmc_svg(cmc), notes=notes or [], counts=counts,
        page_size=PAGE_SIZE, cameras=sorted({q.camera for q in queries}),
        data={"queries": [asdict(q) for q in queries], "identities": identities or []},
        escape=_html.escape)
    out = Path(out_dir)
    if not out.is_dir():
        raise ConfigError(f"report folder {out} does not exist")
    if thumbs is not None:
        files = out / FILES
        if files.exists():  # an earlier report's thumbnails (start_report checked they are ours)
            shutil.rmtree(files)
        os.replace(thumbs.files, files)
    return atomic_write_text(out / "report.html", page)


def build_queries_from_lists(lists: list[dict], q_frames, g_frames, has_match, thumbs: Thumbnails,
                             query_frames: int = 3) -> list[ReportQuery]:
    """The report's queries from ``vidreid match``'s ranked lists
    (:func:`vidreid.inference.match.ranked_lists`).

    Args:
        q_frames, g_frames: name -> list of frame paths ([] when unknown: a grey thumbnail).
        has_match: query index -> whether the gallery holds a true match for it (None: pids unknown).
    """
    out = []
    for i, q in enumerate(lists):
        known = has_match(i)
        ms = []
        first = None
        for m in q["matches"]:
            ok = None if known is None else bool(m["pid"] == q["pid"])
            if ok and first is None:
                first = m["rank"]
            ms.append(dict(m, name=m["gallery"], thumb=thumbs(f"g:{m['gallery']}", g_frames(m["gallery"]), 1), correct=ok))
        status = ("unlabelled" if known is None else "no_match" if not known else
                  "correct" if ms and ms[0]["correct"] else "wrong")
        out.append(ReportQuery(q["query"], str(q["camera"]), int(q["pid"]),
                               thumbs(f"q:{q['query']}", q_frames(q["query"]), query_frames), status, first, ms))
    return out


def identities_rows(names, cameras, pids, ident, frames, thumbs: Thumbnails) -> list[dict]:
    """Per identity (in id order) its tracklets, for :func:`write_report`."""
    rows: dict[int, list] = {}
    for n, c, p, k in zip(names, cameras, pids, ident):
        rows.setdefault(int(k), []).append({"name": str(n), "camera": str(c), "pid": int(p),
                                            "thumb": thumbs(f"g:{n}", frames(n), 1)})
    return [{"identity": k, "tracklets": v} for k, v in sorted(rows.items())]
