"""From a video (or an image sequence) and a tracker's output to tracklet folders.

Input tracks use the MOT Challenge text format, one box per line, comma separated::

    frame, id, bb_left, bb_top, bb_width, bb_height[, conf[, class[, visibility[, ...]]]]

* ``frame``: 1-based frame number (the first decoded video frame, or the image sequence's frame
  whose file name ends in 1, e.g. ``img1/000001.jpg``).
* ``id``: track id (an integer; one tracklet per id).
* ``bb_left, bb_top, bb_width, bb_height``: the box in pixels (floats allowed).
* ``conf`` (column 7, optional, default 1): kept when ``>= min_conf``. MOT ground truth marks
  boxes to ignore with 0 here.
* ``class`` (column 8, optional): kept when in ``classes`` (no filter by default; MOT ground
  truth uses 1 for pedestrians; detection files hold -1 or a world coordinate here).
* ``visibility`` (column 9, optional, default 1): kept when ``>= min_visibility``.
* Further columns are ignored. Blank lines and lines starting with ``#`` are skipped.

Output (what :func:`read_tracklet_dir` and ``vidreid embed`` read)::

    out/<camera>/<track id, 6 digits>/<frame, 6 digits>.jpg
    out/tracklets.csv          one row per tracklet: tracklet, camera, track_id, pid, frames,
                               first_frame, last_frame (pid empty when unknown)
    out/<camera>/tracks_report.json   what was kept, and every dropped box or track by reason

Several cameras go into one ``out`` by running once per camera with its own ``camera`` name;
``tracklets.csv`` gathers them. Boxes are clipped at the image border; what the filters drop is
counted, never lost silently.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..data.datasets.common import IMAGE_EXTS
# the tracklet-folder reader lives with the datasets (the ``tracklets`` training set reads it too)
from ..data.datasets.tracklets import (MANIFEST, MANIFEST_COLUMNS, TrackletRecord, ordered_images,  # noqa: F401
                                       read_manifest, read_tracklet_dir)
from ..errors import ConfigError, DatasetError
from ..fileio import atomic_write_json, atomic_write_text, open_video, read_image, write_image

_CAMERA = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class Box:
    """One line of a MOT file: 1-based frame, track id, box (pixels: left, top, width, height),
    confidence, class (None when the column is absent or not an integer), visibility."""

    frame: int  # 1-based
    track: int
    x: float
    y: float
    w: float
    h: float
    conf: float = 1.0
    cls: int | None = None
    visibility: float = 1.0


def _mot_int(c: str) -> int | None:
    """An integer column (frame, id): decimal digits parsed exactly (no float rounding, so ids
    above 2**53 stay distinct), or a float spelling of an integer such as ``3.0``; None otherwise."""
    try:
        return int(c)
    except ValueError:
        pass
    try:
        v = float(c)
    except ValueError:
        return None
    if not np.isfinite(v) or v != int(v) or abs(v) >= 2 ** 53:  # beyond 2**53 a float is not an exact id
        return None
    return int(v)


def read_mot(path: str | Path) -> list[Box]:
    """Parse a MOT Challenge text file (columns as in the module doc). Frame and track id are
    parsed as integers (exactly, whatever their size); the other columns must be finite numbers.

    Raises:
        DatasetError: a missing file, text that is not UTF-8, or a line that is not at least six
            numbers of the right kinds; names the file and the line number.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"missing track file {path}: expected MOT-format lines 'frame,id,left,top,width,height,...'")
    out = []
    with open(path, "rb") as f:
        for n, raw in enumerate(f, start=1):
            try:
                s = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                raise DatasetError(f"{path}:{n}: not UTF-8 text; expected MOT-format numbers") from None
            if not s or s.startswith("#"):
                continue
            cols = [c.strip() for c in s.split(",")]
            if len(cols) < 6:
                raise DatasetError(f"{path}:{n}: expected at least 6 columns (frame,id,left,top,width,height), got {len(cols)}")
            frame, tid = _mot_int(cols[0]), _mot_int(cols[1])
            if frame is None or frame < 1 or tid is None:
                raise DatasetError(f"{path}:{n}: frame must be an integer >= 1 and id an integer, got {cols[0]!r}, {cols[1]!r}")
            try:
                v = [float(c) for c in cols[2:9]]
            except ValueError:
                raise DatasetError(f"{path}:{n}: expected numbers 'frame,id,left,top,width,height[,conf,class,visibility]', "
                                   f"got {s[:80]!r}") from None
            bad = [i + 3 for i, x in enumerate(v) if not np.isfinite(x)]
            if bad:
                raise DatasetError(f"{path}:{n}: column {bad[0]} is {cols[bad[0] - 1]!r}; boxes, confidence, class and "
                                   "visibility must be finite numbers")
            cls = int(v[5]) if len(v) > 5 and v[5] == int(v[5]) else None
            out.append(Box(frame, tid, v[0], v[1], v[2], v[3], v[4] if len(v) > 4 else 1.0, cls,
                           v[6] if len(v) > 6 else 1.0))
    if not out:
        raise DatasetError(f"{path}: no boxes (empty, or only comments)")
    return out


@dataclass
class TrackFilter:
    """What :func:`plan_tracklets` keeps.

    Attributes:
        min_length: tracklets with fewer frames (after the box filters) are dropped.
        min_height, min_width: boxes smaller than this after clipping (pixels) are dropped.
        min_conf: boxes with ``conf < min_conf`` are dropped.
        min_visibility: boxes with ``visibility < min_visibility`` are dropped.
        classes: keep only these classes (column 8); None keeps all.
        every: keep every ``every``-th box of each track (1 keeps all), counted from its first.
    """

    min_length: int = 2
    min_height: float = 0.0
    min_width: float = 0.0
    min_conf: float = 0.0
    min_visibility: float = 0.0
    classes: tuple[int, ...] | None = None
    every: int = 1


@dataclass
class TrackPlan:
    """Clipped integer boxes to crop, per track id: ``{track: [(frame, x0, y0, x1, y1), ...]}``,
    and the counts of what was dropped and why."""

    boxes: dict[int, list[tuple[int, int, int, int, int]]]
    dropped: dict[str, int] = field(default_factory=dict)
    boxes_read: int = 0


def plan_tracklets(boxes: list[Box], width: int, height: int, flt: TrackFilter = TrackFilter()) -> TrackPlan:
    """Apply the filters of ``flt`` to ``boxes`` for an image of ``width`` x ``height`` pixels:
    clip every box at the border (integer pixel bounds, half-open), drop and count boxes by
    reason (``low_conf``, ``low_visibility``, ``class``, ``outside_image``, ``too_small``,
    ``subsampled``, ``duplicate_frame``) and then tracks shorter than ``min_length``
    (``short_tracks`` and their ``boxes_in_short_tracks``)."""
    if flt.every < 1 or flt.min_length < 1:
        raise ConfigError(f"--every and --min-length must be >= 1, got {flt.every} and {flt.min_length}")
    dropped = dict.fromkeys(("low_conf", "low_visibility", "class", "outside_image", "too_small", "subsampled",
                             "duplicate_frame", "short_tracks", "boxes_in_short_tracks"), 0)
    per: dict[int, dict[int, tuple]] = {}
    for b in sorted(boxes, key=lambda b: (b.track, b.frame)):
        if b.conf < flt.min_conf:
            dropped["low_conf"] += 1
            continue
        if b.visibility < flt.min_visibility:
            dropped["low_visibility"] += 1
            continue
        if flt.classes is not None and b.cls not in flt.classes:
            dropped["class"] += 1
            continue
        x0, y0 = max(0, int(round(b.x))), max(0, int(round(b.y)))
        x1, y1 = min(width, int(round(b.x + b.w))), min(height, int(round(b.y + b.h)))
        if x1 - x0 < 2 or y1 - y0 < 2:
            dropped["outside_image"] += 1
            continue
        if y1 - y0 < flt.min_height or x1 - x0 < flt.min_width:
            dropped["too_small"] += 1
            continue
        t = per.setdefault(b.track, {})
        if b.frame in t:
            dropped["duplicate_frame"] += 1
            continue
        t[b.frame] = (b.frame, x0, y0, x1, y1)
    out = {}
    for tid, frames in per.items():
        seq = [frames[k] for k in sorted(frames)]
        kept = seq[::flt.every]
        dropped["subsampled"] += len(seq) - len(kept)
        if len(kept) < flt.min_length:
            dropped["short_tracks"] += 1
            dropped["boxes_in_short_tracks"] += len(kept)
            continue
        out[tid] = kept
    return TrackPlan(out, dropped, len(boxes))


def _read_image(path: Path) -> np.ndarray:
    img = read_image(path)
    if img is None:
        raise DatasetError(f"cannot read image {path}: missing or not a decodable image")
    return img


def _frames(video: Path | None, frames_dir: Path | None):
    """(size (W, H), iterator of (1-based frame number, BGR image))."""
    if video is not None:
        if not video.is_file():
            raise DatasetError(f"missing video {video}")

        def gen():
            with open_video(video) as cap:
                if not cap.isOpened():
                    raise DatasetError(f"cannot open video {video} with OpenCV (unsupported codec or not a video)")
                n = 1
                while True:
                    ok, img = cap.read()
                    if not ok:
                        return
                    yield n, img
                    n += 1

        it = gen()
        first = next(it, None)
        if first is None:
            raise DatasetError(f"{video}: no frame could be decoded")
        return (first[1].shape[1], first[1].shape[0]), itertools.chain([first], it)
    if frames_dir is None or not frames_dir.is_dir():
        raise DatasetError(f"missing image-sequence folder {frames_dir}")
    seq = ordered_images(frames_dir, require_number=True)
    if not seq:
        raise DatasetError(f"{frames_dir}: no image frames ({', '.join(IMAGE_EXTS)})")
    h, w = _read_image(seq[0][1]).shape[:2]
    return (w, h), ((n, _read_image(p)) for n, p in seq)


def write_manifest(out: Path, rows: list[dict]) -> Path:
    """Write ``out/tracklets.csv`` atomically, rows sorted by camera then track id."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=MANIFEST_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in sorted(rows, key=lambda r: (r["camera"], int(r["track_id"]))):
        w.writerow({k: r[k] for k in MANIFEST_COLUMNS})
    return atomic_write_text(out / MANIFEST, buf.getvalue())


def video_to_tracklets(tracks: str | Path, out: str | Path, camera: str = "cam1", video: str | Path | None = None,
                       frames: str | Path | None = None, flt: TrackFilter = TrackFilter(),
                       identities: dict[int, int] | None = None, progress: bool = False) -> dict:
    """Crop every kept box of a MOT-format track file from a video or an image sequence into
    ``out/<camera>/<track>/<frame>.jpg`` (one tracklet folder per track id), add the tracks to
    ``out/tracklets.csv`` and write ``out/<camera>/tracks_report.json``.

    Args:
        tracks: the MOT text file (columns in the module doc).
        out: output folder (created); may already hold other cameras.
        camera: this video's camera name (letters, digits, ``_ . -``).
        video: a video file OpenCV decodes (exactly one of ``video`` and ``frames``).
        frames: an image-sequence folder (file names end in the frame number).
        flt: box and track filters.
        identities: optional track id -> person id (labelled footage); else pid is empty.

    Returns:
        the report: tracklets and crops written, boxes read, dropped boxes and tracks by reason,
        boxes on frames the video does not have, tracks that the end of the video left shorter
        than ``min_length`` (removed), and a ``note`` saying so when the video ended first.

    The camera folder is written under a temporary name and renamed when complete, so a failure
    (or a kill) never leaves a partial ``out/<camera>``; temporary folders of a killed run are
    removed at the next start.

    Raises:
        DatasetError: a bad or missing video, image or track file (named, with the line), an
            invalid camera name, a camera folder that already exists in ``out``, an invalid
            ``tracklets.csv`` already in ``out``, or no tracklet left after the filters (the
            counts in one line).
        ConfigError: ``every`` or ``min_length`` below 1.
    """
    if (video is None) == (frames is None):
        raise DatasetError("give exactly one of a video file and an image-sequence folder")
    if not _CAMERA.fullmatch(camera):
        raise DatasetError(f"camera name {camera!r}: use letters, digits, '_', '.', '-'")
    out = Path(out)
    cam_dir = out / camera
    for stale in out.glob(f".{camera}.partial-*") if out.is_dir() else ():
        shutil.rmtree(stale, ignore_errors=True)  # left by a killed run of this program (own naming)
    if cam_dir.exists():
        raise DatasetError(f"{cam_dir} already exists: tracklets of camera {camera!r} were written there before; "
                           "choose another --camera or --out (nothing is overwritten)")
    if out.exists() and not out.is_dir():
        raise DatasetError(f"--out {out} is a file; give a folder")
    boxes = read_mot(tracks)
    rows = [r for r in read_manifest(out) if r["camera"] != camera]  # checked before any crop is written
    (W, H), frame_iter = _frames(Path(video) if video is not None else None, Path(frames) if frames is not None else None)
    plan = plan_tracklets(boxes, W, H, flt)
    if identities is not None:
        unknown = sorted(set(plan.boxes) - set(identities))
        if unknown:
            raise DatasetError(f"identities: no person id for track(s) {unknown[:10]}")
    by_frame: dict[int, list[tuple[int, tuple]]] = {}
    for tid, seq in plan.boxes.items():
        for b in seq:
            by_frame.setdefault(b[0], []).append((tid, b))
    written = {tid: [] for tid in plan.boxes}
    last_frame = 0
    if progress:
        from tqdm import tqdm

        frame_iter = tqdm(frame_iter, desc=f"crop {camera}", leave=False)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    # crops go to a staging folder, renamed to out/<camera> when complete: a failure or a kill never
    # leaves a half-written camera folder that would block the rerun
    stage = Path(tempfile.mkdtemp(prefix=f".{camera}.partial-", dir=out))
    try:
        for n, img in frame_iter:
            last_frame = n
            if img.shape[0] != H or img.shape[1] != W:
                raise DatasetError(f"frame {n} is {img.shape[1]}x{img.shape[0]}, the first was {W}x{H}")
            for tid, (_, x0, y0, x1, y1) in by_frame.pop(n, []):
                d = stage / f"{tid:06d}"
                d.mkdir(parents=True, exist_ok=True)
                write_image(d / f"{n:06d}.jpg", img[y0:y1, x0:x1], [cv2.IMWRITE_JPEG_QUALITY, 95])
                written[tid].append(n)
        beyond = sum(len(v) for v in by_frame.values())
        # the length filter again on what was really cropped: a video that ends before its tracks
        # leaves some tracks short; they are removed and counted, never kept below --min-length
        cut = [tid for tid, fr in written.items() if 0 < len(fr) < flt.min_length]
        for tid in cut:
            shutil.rmtree(stage / f"{tid:06d}")
        dropped = dict(plan.dropped, boxes_beyond_last_frame=beyond, short_after_video_end=len(cut),
                       boxes_in_short_after_video_end=sum(len(written[t]) for t in cut))
        for tid in cut:
            written[tid] = []
        kept = {tid: fr for tid, fr in written.items() if fr}
        report = {"camera": camera, "source": str(video if video is not None else frames), "tracks_file": str(tracks),
                  "image_size": [W, H], "frames_decoded": last_frame, "boxes_read": plan.boxes_read,
                  "tracklets_written": len(kept), "crops_written": sum(len(v) for v in kept.values()),
                  "dropped": dropped,
                  "filters": {k: (list(v) if isinstance(v, tuple) else v) for k, v in flt.__dict__.items()}}
        if not kept:
            counts = ", ".join(f"{k} {v}" for k, v in dropped.items() if v)
            raise DatasetError(f"{tracks}: no tracklet left for camera {camera!r} ({plan.boxes_read} boxes read, "
                               f"{last_frame} frames decoded; dropped: {counts or 'nothing'}); loosen the filters")
        atomic_write_json(stage / "tracks_report.json", report)
        os.replace(stage, cam_dir)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if created and not any(out.iterdir()):
            out.rmdir()  # the folder this call made, left empty
        raise
    if beyond or cut:
        report["note"] = (f"the {'video' if video is not None else 'image sequence'} ended at frame {last_frame}, before "
                          f"the tracks did: {beyond} boxes had no frame"
                          + (f"; {len(cut)} track(s) fell below --min-length {flt.min_length} and were left out" if cut else ""))
    for tid, fr in sorted(kept.items()):
        rows.append({"tracklet": f"{camera}/{tid:06d}", "camera": camera, "track_id": tid,
                     "pid": "" if identities is None else identities[tid], "frames": len(fr),
                     "first_frame": fr[0], "last_frame": fr[-1]})
    write_manifest(out, rows)
    return report
