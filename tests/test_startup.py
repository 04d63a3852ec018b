"""The command line starts at once: ``import vidreid``, ``vidreid --help`` / ``--version``,
argument errors and ``vidreid tracklets`` import neither torch nor the models (issue 26); the
names the parser offers are the registries' own."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


def test_import_vidreid_does_not_import_torch():
    mods = _modules_after("import vidreid; vidreid.__version__")
    assert "torch" not in mods and "vidreid.api" not in mods


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["tracklets", "--help"], ["train", "--bogus"], ["match"]])
def test_cli_help_version_and_argument_errors_do_not_import_torch(argv):
    mods = _modules_after(f"from vidreid.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass")
    assert "torch" not in mods


def test_tracklets_runs_without_torch(tmp_path):
    import cv2
    import numpy as np

    for i in range(1, 4):
        cv2.imwrite(str(tmp_path / f"{i:06d}.jpg"), np.full((40, 40, 3), 50 * i, np.uint8))
    (tmp_path / "t.txt").write_text("1,1,1,1,20,30\n2,1,1,1,20,30\n")
    mods = _modules_after(f"from vidreid.cli import main\nassert main(['tracklets', '--frames', {str(tmp_path)!r}, "
                          f"'--tracks', {str(tmp_path / 't.txt')!r}, '--out', {str(tmp_path / 'o')!r}, '--quiet']) == 0")
    assert "torch" not in mods and (tmp_path / "o" / "tracklets.csv").is_file()


def test_api_names_still_work_lazily():
    import vidreid

    assert callable(vidreid.load) and callable(vidreid.rank) and vidreid.ReIDModel.__name__ == "ReIDModel"
    with pytest.raises(AttributeError):
        vidreid.no_such_name  # noqa: B018


def test_parser_names_equal_the_registries():
    from vidreid.data.datasets import DATASETS
    from vidreid.data.names import DATASET_NAMES, SYNTH_LAYOUTS
    from vidreid.synth import LAYOUTS

    assert set(DATASET_NAMES) == set(DATASETS) and tuple(SYNTH_LAYOUTS) == tuple(LAYOUTS)
