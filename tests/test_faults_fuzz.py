"""Fuzzing the parsers a user's files reach (issue 22): random MOT track files, embeddings files
and ``key=value`` overrides. Each either succeeds or is refused with exit status 2 and one line
(the library: a ConfigError / DatasetError); never a traceback."""

from __future__ import annotations

import io
import string

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is a test dependency (pip install '.[test]')")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from vidreid.cli import main  # noqa: E402

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

NUMBERS = st.one_of(st.integers(-5, 2 ** 70), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                    st.sampled_from(["", " ", "1e400", "-0", "0x1f", "1_0", "nan", "inf", "3.0", "１"]))
CELL = st.one_of(NUMBERS.map(str), st.text(alphabet=string.printable, max_size=6))
LINE = st.lists(CELL, min_size=0, max_size=11).map(",".join)


def _call(capsys, argv) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


def _assert_clean(code: int, err: str) -> None:
    assert "Traceback" not in err
    if code != 0:
        assert code == 2, err
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("vidreid "), err


@pytest.fixture(scope="module")
def seq(tmp_path_factory):
    import cv2

    d = tmp_path_factory.mktemp("seq")
    for i in range(1, 4):
        cv2.imwrite(str(d / f"{i:06d}.jpg"), np.full((48, 40, 3), 60 * i, np.uint8))
    return d


@SETTINGS
@given(lines=st.lists(LINE, min_size=0, max_size=6), raw=st.binary(max_size=24))
def test_random_mot_files(tmp_path_factory, capsys, seq, lines, raw):
    d = tmp_path_factory.mktemp("mot")
    (d / "t.txt").write_bytes(("\n".join(lines) + "\n").encode() + raw)
    code, err = _call(capsys, ["tracklets", "--frames", str(seq), "--tracks", str(d / "t.txt"), "--out", str(d / "o"),
                               "--quiet"])
    _assert_clean(code, err)


def _valid_npz() -> bytes:
    from vidreid.inference.match import Embeddings

    buf = io.BytesIO()
    e = Embeddings(np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32), [f"t{i}" for i in range(5)],
                   ["a", "b", "a", "b", "a"], np.array([1, 1, 2, 2, 3]), np.full(5, -1), np.full(5, -1), {"metric": "cosine"})
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as t:
        p = e.save(Path(t) / "e.npz")
        buf.write(p.read_bytes())
    return buf.getvalue()


VALID = _valid_npz()


@SETTINGS
@given(cut=st.integers(0, len(VALID)), flips=st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)),
                                                      max_size=4))
def test_damaged_embeddings_files(tmp_path_factory, capsys, cut, flips):
    d = tmp_path_factory.mktemp("npz")
    data = bytearray(VALID)
    for i, v in flips:
        data[i] = v
    (d / "q.npz").write_bytes(bytes(data[:cut] if cut < len(data) else data))
    code, err = _call(capsys, ["match", "--query", str(d / "q.npz"), "--out", str(d / "m")])
    _assert_clean(code, err)


ARRAYS = st.sampled_from([np.zeros((0, 3)), np.zeros((3,)), np.full((3, 2), np.inf), np.array([["a", "b"]] * 3),
                          np.array([1, 2, 3]), np.array(["x", "y", "z"]), np.array("{}"), np.array("[1]"),
                          np.array([1.5, 2.5, 3.5]), np.ones((3, 2), bool), np.zeros((3, 1, 2))])


@SETTINGS
@given(repl=st.dictionaries(st.sampled_from(["embeddings", "names", "cameras", "pids", "first_frame", "last_frame",
                                             "meta"]), ARRAYS, max_size=3),
       drop=st.sets(st.sampled_from(["names", "meta", "pids"]), max_size=1))
def test_malformed_embeddings_contents(tmp_path_factory, capsys, repl, drop):
    d = tmp_path_factory.mktemp("npz")
    (d / "v.npz").write_bytes(VALID)
    z = {k: v for k, v in np.load(d / "v.npz").items() if k not in drop}
    z.update(repl)
    np.savez(d / "q.npz", **z)
    code, err = _call(capsys, ["match", "--query", str(d / "q.npz"), "--out", str(d / "m")])
    _assert_clean(code, err)


KEYS = st.sampled_from(["data.height", "data.p", "data.root", "optim.lr", "optim.betas", "schedule.milestones",
                        "stages", "loss", "model.args", "train.device", "test.distance", "data.split_id",
                        "data.train_sampling.seq_len", "data.augment.flip_p", "train.amp", "data.sources",
                        "bogus", "data.bogus", "test.headline_map", "data.test_sampling.clips"])
VALUES = st.one_of(CELL, st.sampled_from(["[1,2", "{a: 1}", "[2,3]", "!!python/object/apply:os.system [true]",
                                          "${oc.env:HOME}", "null", "[{name: a, lr: -1}]", "1e9", "-1", "true",
                                          "\x00", "'", "[[[]]]", "{name: triplet}"]))


@SETTINGS
@given(key=KEYS, value=VALUES)
def test_random_overrides(key, value):
    from vidreid.config import load_config
    from vidreid.errors import ConfigError

    try:
        load_config("demo/prid2011", [f"{key}={value}"])
    except ConfigError as e:  # anything else (a traceback on the command line) fails the test
        assert str(e).strip()
