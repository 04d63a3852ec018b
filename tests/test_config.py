from __future__ import annotations

import pytest

from vidreid.config import load_config, packaged_config_dir
from vidreid.errors import ConfigError


def test_packaged_configs_load():
    for p in sorted(packaged_config_dir().rglob("*.yaml")):
        cfg = load_config(p)
        assert cfg.data.dataset and cfg.model.name


def test_base_inheritance_and_overrides():
    cfg = load_config("baseline/mars", ["optim.lr=0.01", "data.p=4"])
    assert cfg.data.dataset == "mars" and cfg.data.height == 256  # inherited from prid2011.yaml
    assert cfg.optim.lr == 0.01 and cfg.data.p == 4
    assert cfg.schedule.milestones == [40, 80, 120]


def test_unknown_key_lists_valid():
    with pytest.raises(ConfigError, match=r"valid keys under optim: .*'lr'"):
        load_config(None, ["optim.lrr=0.1"])
    with pytest.raises(ConfigError, match="valid keys"):
        load_config(None, ["bogus=1"])


def test_bad_yaml_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data:\n  datset: mars\n")
    with pytest.raises(ConfigError, match=f"{p}.*datset.*valid keys under data"):
        load_config(p)


def test_bad_override_and_type():
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["optim.lr"])
    with pytest.raises(ConfigError):
        load_config(None, ["data.p=notanint"])
    with pytest.raises(ConfigError, match="not found"):
        load_config("no/such/config")


def test_paper_recipes_run_all_ten_splits():
    """Every packaged PRID-2011 / iLIDS-VID recipe evaluates the 10-split protocol (the papers'
    means), except the CPU-scale and demo configs, which name their one split, and the image
    pre-training stages (pretrain_*.yaml), whose split is the image datasets' first split (a
    pre-training stage is not a headline number)."""
    from vidreid.config import load_config, packaged_config_dir

    base = packaged_config_dir()
    seen = 0
    for p in sorted(base.rglob("*.yaml")):
        cfg = load_config(p)
        if cfg.data.dataset not in ("prid2011", "ilidsvid"):
            continue
        rel = p.relative_to(base).as_posix()
        if rel.split("/")[-1].startswith(("cpu_", "pretrain_")) or rel.startswith(("demo/", "reference/")):
            assert cfg.data.split_id == 0, rel
        else:
            assert cfg.data.split_id == "all", rel
            seen += 1
    assert seen >= 10


def test_demo_row_names_the_guards_its_recipe_uses():
    """The demo table's trained row says which guards against forgetting the recipe has."""
    from vidreid.config import load_config
    from vidreid.demo import _trained_label

    assert _trained_label(load_config("demo/prid2011", [])) == \
        "baseline (trained; distillation, appearance augmentation, ImageNet anchor)"
    plain = load_config("demo/prid2011", ["train.distill_weight=0", "model.args.pretrained_anchor=0",
                                          "data.augment.color_p=0", "data.augment.gray_p=0", "data.augment.blur_p=0.2"])
    assert _trained_label(plain, "trained on synthetic") == "baseline (trained on synthetic; appearance augmentation)"
