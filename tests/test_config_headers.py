"""Every packaged config loads, and what its own header states about the input size, clip length
T, MARS gallery, splits and stages is what the file resolves to (where that is cheap to read off
the text). A header is the comment block of the file itself; a file without a claim is skipped."""

from __future__ import annotations

import re

import pytest

from vidreid.config import load_config, packaged_config_dir

CONFIGS = sorted(p.relative_to(packaged_config_dir()).with_suffix("").as_posix()
                 for p in packaged_config_dir().rglob("*.yaml"))


def _header(name: str) -> str:
    lines = (packaged_config_dir() / f"{name}.yaml").read_text().splitlines()
    return "\n".join(line for line in lines if line.lstrip().startswith("#"))


def test_there_are_configs():
    assert len(CONFIGS) > 100 and "strf/mars" in CONFIGS and "stan/joint" in CONFIGS


@pytest.mark.parametrize("name", CONFIGS)
def test_header_claims_match_the_resolved_config(name):
    cfg = load_config(name)
    head = _header(name)
    d = cfg.data
    sizes = {(int(h), int(w)) for h, w in re.findall(r"\b(\d{2,3}) ?x ?(\d{2,3})\b", head) if int(h) >= 32 and int(w) >= 32}
    sizes -= {(int(a), int(b)) for a, b in re.findall(r"(\d[\d,]*) x (\d[\d,]*) pairs", head.replace(",", ""))}
    if sizes:
        assert (d.height, d.width) in sizes, f"{name}: header sizes {sizes}, config {d.height}x{d.width}"
    for t in re.findall(r"\bT = (\d+)\b", head):
        assert d.train_sampling.seq_len == int(t), f"{name}: header T = {t}, config {d.train_sampling.seq_len}"
    if "11,310" in head:
        assert d.dataset == "mars" and d.mars_gallery == "all_test", name
    if "9,330" in head and "11,310" not in head:
        assert d.mars_gallery == "exclude_query", name
    if re.search(r"\b10 (standard )?splits\b", head) and not d.sources:
        assert d.split_id == "all" or "split_id=all" in head, name
    stage_names = [s.name for s in cfg.stages]
    if re.search(r'no "Ind" stage|without the final per-dataset', head):
        assert "ind" not in stage_names, (name, stage_names)
    if name in ("stan/prid2011", "stan/ilidsvid", "stan/mars"):  # the paper's regime: "Ind" from the joint run
        assert stage_names == ["ind"] and "stan_joint" in cfg.train.init_from, name
    if name == "stan/joint" or name.startswith("stan/ablation/"):  # the paper's non-Ind rows: jointly trained
        assert [s["dataset"] for s in d.sources] == ["prid2011", "ilidsvid", "mars"], name
        assert "ind" not in stage_names, name
    if "900 epochs at a" in head:
        assert cfg.schedule.epochs == 900 and cfg.schedule.name == "constant", name


def test_strf_configs_test_as_trained_and_rru_epochs():
    strf = load_config("strf/mars")
    assert strf.data.test_sampling.clips == "as_trained" and strf.test.headline_map == "mAP"
    for name in ("rru_stim/prid2011", "rru_stim/ilidsvid"):
        c = load_config(name)
        assert (c.schedule.name, c.schedule.epochs) == ("constant", 900)
