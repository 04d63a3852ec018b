"""Shared fixtures: tiny generated trees of every layout, and the real data in ../shared."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VIDREID_SHARED", REPO.parent / "shared")) / "data"


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or a pytest skip naming what is missing."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real data not available: {p} is absent (a user clone has no ../shared)")
    return p


@pytest.fixture(scope="session")
def tiny_tree(tmp_path_factory):
    """``tiny_tree(layout, **kw)`` -> root of a generated tiny benchmark (cached per session)."""
    from vidreid.synth import generate

    cache: dict = {}

    def make(layout: str, **kw) -> Path:
        key = (layout, tuple(sorted(kw.items())))
        if key not in cache:
            root = tmp_path_factory.mktemp(f"syn_{layout}")
            generate(layout, "tiny", root, seed=kw.pop("seed", 0), workers=1, **kw)
            cache[key] = root
        return cache[key]

    return make


def manifest(root: Path) -> dict:
    return json.loads((root / "synth_manifest.json").read_text())


def pytest_collection_modifyitems(config, items):
    if os.environ.get("VIDREID_SLOW") == "1" or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: set VIDREID_SLOW=1 or run with -m slow")
    for it in items:
        if "slow" in it.keywords:
            it.add_marker(skip)
