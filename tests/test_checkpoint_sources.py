"""``--checkpoint`` takes the same model sources in every subcommand (issue 25): a checkpoint
file, a config name (the config's model as built, e.g. the ImageNet reference), or
``torchreid:ARCH`` with ``--weights``."""

from __future__ import annotations

import json

import pytest

from vidreid.cli import is_config_name, main

SMALL = ["data.num_workers=0", "train.progress=false", "data.height=64", "data.width=32"]


def test_config_names_are_told_from_checkpoint_files(tmp_path):
    assert is_config_name("reference/imagenet_lite0") and is_config_name("my.yaml")
    assert not is_config_name(tmp_path / "checkpoint.pt") and not is_config_name("no/such/config")
    (tmp_path / "reference").mkdir()
    (tmp_path / "reference" / "imagenet_lite0").write_text("x")  # an existing file wins over the packaged name
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert not is_config_name("reference/imagenet_lite0")
    finally:
        os.chdir(cwd)


def test_test_takes_a_config_name_as_checkpoint_and_matches_config(tiny_tree, tmp_path, capsys):
    root = tiny_tree("prid2011")
    assert main(["test", "--checkpoint", "reference/imagenet_lite0", "--root", str(root), "--out", str(tmp_path / "a"),
                 *SMALL]) == 0
    assert main(["test", "--config", "reference/imagenet_lite0", "--root", str(root), "--out", str(tmp_path / "b"),
                 *SMALL]) == 0
    a, b = (json.loads((tmp_path / x / "metrics.json").read_text())["summary"] for x in "ab")
    assert a["rank1"] == pytest.approx(b["rank1"]) and a["mAP"] == pytest.approx(b["mAP"])
    capsys.readouterr()
    assert main(["test", "--checkpoint", "reference/imagenet_lite0", "--config", "demo/prid2011"]) == 2
    assert "leave out --config" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", ["test", "visualize features", "embed", "match", "export", "adapt"])
def test_every_checkpoint_help_names_config_names(cmd, capsys):
    with pytest.raises(SystemExit):
        main([*cmd.split(), "--help"])
    assert "config name" in " ".join(capsys.readouterr().out.split())  # argparse wraps lines
