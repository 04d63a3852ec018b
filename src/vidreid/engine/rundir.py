"""Run folders: what a training run owns in its ``train.output_dir``, and what it never touches.

A run folder holds a manifest, ``.vidreid_run.json``: the run's id and the names (entries of
the folder) the run writes: ``checkpoint.pt``, ``config.yaml``, ``log.jsonl``, ``metrics.json``,
``tb/``, ``test/`` (and ``split_<i>/`` for a folder of per-split runs). The rules:

* a folder holding any entry the program did not write (not in its manifest; for a folder from
  before manifests existed, not one of the names above beside a ``checkpoint.pt``) is never
  used, whatever the options: nothing of the user's is replaced or deleted;
* in a process group rank 0 decides and acts (:meth:`vidreid.engine.trainer.Trainer.fit`);
* a folder holding a run is used only to continue that same run (``--resume`` of a checkpoint
  whose run id is the folder's), or with ``--overwrite``: then the old run's entries are moved
  aside into ``.replaced-<time>/`` and put back if the new run fails (an interrupted run keeps
  its resumable checkpoint; the old run then stays aside, named in the folder); a finished new
  run deletes them;
* temporary files the program left after a kill (``.<name>.*.tmp*``, from
  :func:`vidreid.fileio.atomic_path`) are removed when a run starts in the folder.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path

from ..errors import ConfigError
from ..fileio import atomic_write_json

MANIFEST = ".vidreid_run.json"
RUN_ENTRIES = ("checkpoint.pt", "config.yaml", "log.jsonl", "metrics.json", "tb", "test")
ASIDE_PREFIX = ".replaced-"


def new_run_id() -> str:
    return uuid.uuid4().hex


def _is_own_temp(name: str) -> bool:
    """A temporary file :func:`vidreid.fileio.atomic_path` makes: ``.<target>.<random>.tmp<suffix>``."""
    return name.startswith(".") and ".tmp" in name and not name.startswith((MANIFEST, ASIDE_PREFIX))


def read_manifest(folder: Path) -> dict | None:
    p = Path(folder) / MANIFEST
    if not p.is_file():
        return None
    try:
        m = json.loads(p.read_text())
        return m if isinstance(m, dict) and isinstance(m.get("owned"), list) else None
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def ownership(folder: Path, extra_names=()) -> tuple[set[str], set[str], str | None]:
    """(entries the program wrote, entries it did not, the run id) of an existing folder."""
    folder = Path(folder)
    names = {p.name for p in folder.iterdir()} - {MANIFEST}
    names = {n for n in names if not n.startswith(ASIDE_PREFIX) and not _is_own_temp(n)}
    m = read_manifest(folder)
    if m is not None:
        owned = set(m["owned"]) & names
        return owned, names - owned, m.get("run_id")
    if "checkpoint.pt" in names:  # a run folder from before manifests: its usual entries
        known = set(RUN_ENTRIES) | set(extra_names)
        owned = {n for n in names if n in known or n.startswith("split_")}
        return owned, names - owned, None
    return set(), names, None


def clean_own_temps(folder: Path) -> int:
    """Remove temporary files of the program's own naming left by a kill; returns how many."""
    n = 0
    for p in Path(folder).glob(".*"):
        if p.is_file() and _is_own_temp(p.name):
            p.unlink(missing_ok=True)
            n += 1
    return n


class RunFolder:
    """The run folder of one training run, opened by :func:`open_run_folder`. Call
    :meth:`finished` when the run ends well, :meth:`failed` when it raised (not for an
    interruption that left a resumable checkpoint)."""

    def __init__(self, path: Path, run_id: str, aside: Path | None, owned: list[str]):
        self.path, self.run_id, self.aside, self.owned = path, run_id, aside, owned

    def finished(self) -> None:
        if self.aside is not None and self.aside.exists():
            shutil.rmtree(self.aside)  # the replaced run: only entries this program wrote
        self.aside = None

    def failed(self) -> None:
        """Put the replaced run back (its entries, its manifest) over what the new run wrote."""
        if self.aside is None or not self.aside.exists():
            return
        for name in self.owned:
            p = self.path / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()
        for p in self.aside.iterdir():
            os.replace(p, self.path / p.name)
        self.aside.rmdir()
        self.aside = None


def open_run_folder(path: str | Path, run_id: str, *, resume_run_id: str | None = None,
                    resume_path: str | Path | None = None, overwrite: bool = False,
                    owned=RUN_ENTRIES) -> RunFolder:
    """Check and claim ``path`` for a run (rules in the module doc) and write its manifest.

    Args:
        path: ``train.output_dir``.
        run_id: this run's id (a continued run keeps its checkpoint's).
        resume_run_id, resume_path: the checkpoint being resumed (None for a fresh run); its run
            id, or for an old checkpoint without one, its path (a run continues in its own folder).
        overwrite: replace a run the folder holds (``--overwrite``).
        owned: the entry names this run writes.

    Raises:
        ConfigError: the folder holds entries the program did not write, or another run without
            ``overwrite``; the message names the folder and what it holds.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"train.output_dir {path} is a file, not a folder")
    aside = None
    if path.is_dir():
        mine, foreign, folder_run = ownership(path, owned)
        if foreign:
            shown = ", ".join(sorted(foreign)[:5]) + (" ..." if len(foreign) > 5 else "")
            raise ConfigError(f"train.output_dir {path} holds files vidreid did not write ({shown}); nothing there is "
                              "replaced or deleted: choose an empty or new train.output_dir")
        if mine:
            same = resume_path is not None and (
                (resume_run_id is not None and resume_run_id == folder_run)
                or (resume_run_id is None and folder_run is None
                    and Path(resume_path).resolve().parent == path.resolve()))
            if not same and not overwrite:
                what = "another run" if resume_path is not None else "a run"
                raise ConfigError(
                    f"train.output_dir {path} already holds {what} ({', '.join(sorted(mine))}); "
                    + ("--resume continues a run in its own folder or an empty one; " if resume_path is not None else
                       f"continue it with --resume {path / 'checkpoint.pt'}, ")
                    + "replace it with --overwrite (train.overwrite=true), or choose another train.output_dir")
            if not same:
                aside = path / f"{ASIDE_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}-{run_id[:6]}"
                aside.mkdir()
                for name in sorted(mine):
                    os.replace(path / name, aside / name)
                if (path / MANIFEST).exists():
                    os.replace(path / MANIFEST, aside / MANIFEST)
    path.mkdir(parents=True, exist_ok=True)
    clean_own_temps(path)
    atomic_write_json(path / MANIFEST, {"run_id": run_id, "owned": list(owned), "written_by": "vidreid train"})
    return RunFolder(path, run_id, aside, list(owned))
