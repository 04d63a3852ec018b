"""PETS 2009 S2.L1 (view 001): real pedestrian footage turned into re-ID tracklets.

``prepare_pets2009(src, out)`` reads ``src/vtest.avi`` (795 frames, 768x576), the ground-truth
boxes ``src/PETS2009-S2L1.xml`` (CVML: ``<frame number><objectlist><object id><box h w xc yc>``)
and the identities table (track id -> person id: a person re-entering the view gets a new track
id; this project's own table ships with the package, :data:`IDENTITIES`, and
``src/identities.csv`` takes precedence when present), crops every box (clamped to the image), and writes two roots in the folder layout
(:mod:`vidreid.data.datasets.folder`), one per protocol of the data's README:

* ``out/reentry``: *re-entry linking*. Every track is a gallery tracklet; every track whose
  person has another track is also a query. Each track gets its own camid (its track id), so
  the standard exclusion (same pid and camid) removes exactly the query's own track from its
  ranking and the other tracks of the same person are its matches.
* ``out/split``: *split tracks*. The first half of every track is a query (camid 1), the second
  half of every track is in the gallery (camid 2); a match is the same person.

Boxes that lie entirely outside the image, or tracks too short to split, are excluded and
counted in ``out/pets2009_prepare.json``; nothing is dropped silently.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2

from ...errors import DatasetError
from ...fileio import atomic_write_json, open_video, write_image
from .common import require_file


def parse_cvml(path: Path) -> dict[int, list[tuple[int, float, float, float, float]]]:
    """Ground-truth boxes per track id: ``{track: [(frame, xc, yc, w, h), ...]}`` in frame order.

    Raises:
        DatasetError: not CVML as described (names the file and the element).
    """
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise DatasetError(f"{path}: not valid XML: {e}") from e
    tracks: dict[int, list] = {}
    for fr in root.iter("frame"):
        try:
            n = int(fr.attrib["number"])
        except (KeyError, ValueError) as e:
            raise DatasetError(f"{path}: <frame> without an integer 'number' attribute") from e
        for obj in fr.iter("object"):
            box = obj.find("box")
            if box is None or "id" not in obj.attrib:
                raise DatasetError(f"{path}: frame {n}: <object> needs an id and a <box>")
            try:
                b = tuple(float(box.attrib[k]) for k in ("xc", "yc", "w", "h"))
            except (KeyError, ValueError) as e:
                raise DatasetError(f"{path}: frame {n}: <box> needs numeric xc, yc, w, h") from e
            tracks.setdefault(int(obj.attrib["id"]), []).append((n,) + b)
    for t in tracks.values():
        t.sort()
    return tracks


def cvml_to_mot(xml: str | Path, out: str | Path) -> int:
    """Write the CVML ground truth as a MOT Challenge text file (what ``vidreid tracklets``
    reads): ``frame,id,left,top,width,height,1,1,1`` with 1-based frames (CVML numbers frames
    from 0, the first decoded frame) and the box's top-left corner from its centre. Returns the
    number of boxes written."""
    from ...fileio import atomic_write_text

    tracks = parse_cvml(Path(xml))
    rows = sorted((n, tid, xc - w / 2, yc - h / 2, w, h) for tid, boxes in tracks.items() for n, xc, yc, w, h in boxes)
    atomic_write_text(out, "".join(f"{n + 1},{tid},{x:.2f},{y:.2f},{w:.2f},{h:.2f},1,1,1\n" for n, tid, x, y, w, h in rows))
    return len(rows)


def read_identities(path: Path) -> dict[int, int]:
    """track id -> person id from ``identities.csv`` (columns track_id, person_id; integers).

    Raises:
        DatasetError: a missing or unreadable file, a row that is not two integers, or a track id
            given two different person ids (names the file and the line).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"missing identities file {path}: expected CSV columns track_id,person_id")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not UTF-8 text (byte {e.start}); expected CSV columns track_id,person_id") from None
    out: dict[int, int] = {}
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if reader.fieldnames is None or not {"track_id", "person_id"} <= set(reader.fieldnames):
        raise DatasetError(f"{path}: expected a header with columns track_id,person_id, got {reader.fieldnames}")
    for row in reader:
        line = reader.line_num
        try:
            tid, pid = int(str(row["track_id"]).strip()), int(str(row["person_id"]).strip())
        except (TypeError, ValueError):
            raise DatasetError(f"{path}:{line}: expected integer track_id,person_id, got "
                               f"{row.get('track_id')!r},{row.get('person_id')!r}") from None
        if tid in out and out[tid] != pid:
            raise DatasetError(f"{path}:{line}: track {tid} is given person {pid}, an earlier row gave {out[tid]}")
        out[tid] = pid
    return out


IDENTITIES = Path(__file__).with_name("pets2009_identities.csv")  # this project's table (docs/datasets.md)
DEBIAN_VIDEO = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")  # Debian/Ubuntu package opencv-doc

FETCH = ("PETS 2009 S2.L1 needs two public files: the video vtest.avi (OpenCV's sample data: opencv/samples/data/vtest.avi "
         "in the OpenCV repository, or /usr/share/doc/opencv-doc/examples/data/vtest.avi from the Debian/Ubuntu package "
         "opencv-doc, where vidreid also looks) and the ground truth PETS2009-S2L1.xml (crowdbotp/OpenTraj, "
         "datasets/PETS-2009/data/annotations, annotations by A. Milan); the identities table (which tracks are one "
         "person re-entering, curated for vidreid: docs/datasets.md) ships with the package")


def find_video(src: Path | None) -> Path | None:
    """``src/vtest.avi``, else the copy Debian's ``opencv-doc`` installs, else None."""
    for c in ((src / "vtest.avi") if src is not None else None, DEBIAN_VIDEO):
        if c is not None and c.is_file():
            return c
    return None


def prepare_pets2009(src: str | Path | None, out: str | Path, min_split_len: int = 2, video: str | Path | None = None,
                     annotations: str | Path | None = None, identities: str | Path | None = None) -> dict:
    """Crop the ground-truth tracks of PETS 2009 S2.L1 into the two protocol roots.

    Args:
        src: folder with PETS2009-S2L1.xml and vtest.avi (the video may instead be Debian's
            ``opencv-doc`` copy) and optionally identities.csv; or None with the paths below.
        out: output folder; ``out/reentry`` and ``out/split`` are written.
        video, annotations, identities: each file's own path (default: in ``src``; the video
            also where ``opencv-doc`` installs it; the identities the packaged
            :data:`IDENTITIES` when ``src`` has none).
        min_split_len: tracks with fewer boxes are left out of the split protocol (counted).

    Returns:
        The summary also written to ``out/pets2009_prepare.json``: counts of frames, boxes,
        tracks, people, crops written, and what was excluded and why.

    Raises:
        DatasetError: a missing file, an unreadable video, or a track id without a person id.
    """
    out = Path(out)
    for stale in out.glob(".pets2009.partial-*") if out.is_dir() else ():
        shutil.rmtree(stale, ignore_errors=True)  # left by a killed earlier run (this program's own naming)
    done = [p for p in (out / "reentry", out / "split", out / "pets2009_prepare.json") if p.exists()]
    if done:
        raise DatasetError(f"--out {out} already holds {', '.join(p.name for p in done)} (an earlier prepare); "
                           "choose an empty or new --out (nothing there is replaced)")
    if src is None and annotations is None:
        raise DatasetError("prepare pets2009: give --src DIR or --annotations (and --video). " + FETCH)
    src = Path(src) if src is not None else None
    video = Path(video) if video else (find_video(src) or (src / "vtest.avi" if src else DEBIAN_VIDEO))
    video = require_file(video, "the PETS 2009 S2.L1 view-001 video. " + FETCH)
    tracks = parse_cvml(require_file(Path(annotations) if annotations else src / "PETS2009-S2L1.xml",
                                     "CVML ground truth. " + FETCH))
    id_path = Path(identities) if identities else (src / "identities.csv" if src and (src / "identities.csv").is_file()
                                                   else IDENTITIES)
    ids = read_identities(require_file(id_path, "track_id,person_id table. " + FETCH))
    missing = sorted(set(tracks) - set(ids))
    if missing:
        raise DatasetError(f"{id_path}: no person id for track(s) {missing}")
    by_frame: dict[int, list[tuple[int, int, tuple]]] = {}
    for tid, boxes in tracks.items():
        for k, (n, xc, yc, w, h) in enumerate(boxes):
            by_frame.setdefault(n, []).append((tid, k, (xc, yc, w, h)))
    crops: dict[int, list[tuple[int, object]]] = {t: [] for t in tracks}
    excluded = {"boxes_outside_image": 0}
    n = 0
    with open_video(video) as cap:
        if not cap.isOpened():
            raise DatasetError(f"cannot open video {video} with OpenCV")
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            H, W = frame.shape[:2]
            for tid, k, (xc, yc, w, h) in by_frame.get(n, []):
                x0, y0 = max(0, int(round(xc - w / 2))), max(0, int(round(yc - h / 2)))
                x1, y1 = min(W, int(round(xc + w / 2))), min(H, int(round(yc + h / 2)))
                if x1 - x0 < 2 or y1 - y0 < 2:
                    excluded["boxes_outside_image"] += 1
                    continue
                crops[tid].append((n, frame[y0:y1, x0:x1].copy()))
            n += 1
    if n == 0:
        raise DatasetError(f"{video}: no frame could be decoded")
    frames_beyond = sum(1 for f in by_frame if f >= n)
    if frames_beyond:
        excluded["annotated_frames_beyond_video"] = frames_beyond

    def write(root: Path, subset: str, tid: int, camid: int, items):
        d = root / subset / f"{ids[tid]:04d}" / f"c{camid}_track{tid:02d}"
        d.mkdir(parents=True, exist_ok=True)
        for fn, img in items:
            write_image(d / f"{fn:06d}.jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])

    persons: dict[int, list[int]] = {}
    for tid in tracks:
        if crops[tid]:
            persons.setdefault(ids[tid], []).append(tid)
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".pets2009.partial-", dir=out))  # renamed into place when complete
    try:
        summary = _write_protocols(stage, tracks, crops, ids, persons, write, min_split_len, excluded, n)
        for name in ("reentry", "split"):
            os.replace(stage / name, out / name)
        atomic_write_json(out / "pets2009_prepare.json", summary)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return summary


def _write_protocols(stage, tracks, crops, ids, persons, write, min_split_len, excluded, n) -> dict:
    re_root, sp_root = stage / "reentry", stage / "split"
    n_query = 0
    for tid in sorted(tracks):
        if not crops[tid]:
            continue
        write(re_root, "gallery", tid, tid, crops[tid])
        if len(persons[ids[tid]]) > 1:
            write(re_root, "query", tid, tid, crops[tid])
            n_query += 1
    excluded["tracks_too_short_to_split"] = 0
    n_split = 0
    for tid in sorted(tracks):
        c = crops[tid]
        if len(c) < min_split_len:
            excluded["tracks_too_short_to_split"] += 1
            continue
        half = len(c) // 2
        write(sp_root, "query", tid, 1, c[:half])
        write(sp_root, "gallery", tid, 2, c[half:])
        n_split += 1
    summary = {
        "video_frames": n,
        "boxes": sum(len(b) for b in tracks.values()),
        "crops_written": sum(len(c) for c in crops.values()),
        "tracks": len(tracks),
        "people": len(set(ids[t] for t in tracks)),
        "reentry": {"query_tracklets": n_query, "gallery_tracklets": sum(1 for t in tracks if crops[t])},
        "split": {"query_tracklets": n_split, "gallery_tracklets": n_split},
        "excluded": excluded,
    }
    return summary
