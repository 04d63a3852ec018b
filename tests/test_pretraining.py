"""The papers' pre-training stages as recipes (issue 23), end to end on tiny synthetic layouts:
STAN's image pre-training on whichever of its datasets are present (missing ones named), then its
joint video stages from that run; ASTPN's RNN-CNN on VIPeR pairs, then ASTPN from it; the
baseline from a torchreid OSNet file."""

from __future__ import annotations

import json

import torch

from vidreid.cli import main
from vidreid.synth import generate

TINY = ["data.height=64", "data.width=32", "data.num_workers=0", "train.progress=false", "data.p=2", "data.k=2"]


def test_stan_image_pretraining_skips_missing_datasets_then_joint_starts_from_it(tmp_path, capsys, tiny_tree):
    for layout in ("viper", "cuhk01"):
        generate(layout, "tiny", tmp_path / layout, workers=1)
    model = "model.args={backbone: resnet18, pretrained: null, num_parts: 2, attn_dim: 16}"
    one = "stages=[{name: cnn, epochs: 1, model_attrs: {spatial: avg, temporal: avg}, " \
          "loss: [{name: oim, input: features, feat_dim: 128, temperature: 0.1, momentum: 0.5}]}]"
    srcs = (f"data.sources=[{{dataset: cuhk01, root: {tmp_path / 'cuhk01'}, optional: true}}, "
            f"{{dataset: cuhk03_labeled, root: {tmp_path / 'absent'}, optional: true}}, "
            f"{{dataset: viper, root: {tmp_path / 'viper'}, optional: true}}]")
    assert main(["train", "--config", "stan/pretrain_images", srcs, model, one, *TINY,
                 f"train.output_dir={tmp_path / 'pre'}"]) == 0
    out = capsys.readouterr().out
    assert "not found, left out: cuhk03_labeled" in out and "[sources] cuhk01" in out and "[sources] viper" in out
    pre = torch.load(tmp_path / "pre" / "checkpoint.pt", weights_only=True)["model"]
    prid = tiny_tree("prid2011")
    assert main(["train", "--config", "stan/joint_from_images", f"data.sources=[{{dataset: prid2011, root: {prid}}}]",
                 model, one, *TINY, "data.split_id=0", f"train.output_dir={tmp_path / 'joint'}",
                 f"train.init_from={tmp_path / 'pre' / 'checkpoint.pt'}", "schedule.epochs=1"]) == 0
    out = capsys.readouterr().out
    n_backbone = sum(1 for k in pre if k.startswith("backbone."))
    loaded = int(out.split("[init_from]")[1].split(":")[1].split("tensors loaded")[0])
    assert loaded >= n_backbone > 0  # the CNN the image pre-training trained (the classifier: another label space)


def test_astpn_viper_pretraining_then_astpn_from_it(tmp_path, tiny_tree):
    generate("viper", "tiny", tmp_path / "viper", workers=1)
    small = ["model.args.height=56", "model.args.width=24", "schedule.epochs=1", "data.num_workers=0",
             "train.progress=false", "data.height=64", "data.width=32"]
    assert main(["train", "--config", "astpn/pretrain_viper", f"data.root={tmp_path / 'viper'}", *small,
                 f"train.output_dir={tmp_path / 'pre'}"]) == 0
    ck = tmp_path / "pre" / "checkpoint.pt"
    assert ck.is_file()
    prid = tiny_tree("prid2011")
    assert main(["train", "--config", "astpn/prid2011", f"data.root={prid}", "data.split_id=0", "data.flow=null",
                 "model.args.in_channels=3", *small, f"train.output_dir={tmp_path / 'astpn'}",
                 f"train.init_from={ck}"]) == 0
    st = torch.load(tmp_path / "astpn" / "checkpoint.pt", weights_only=True)
    assert json.loads((tmp_path / "astpn" / "metrics.json").read_text())["num_query"] > 0
    assert st["config"]["train"]["init_from"] == str(ck)


def test_baseline_from_a_torchreid_osnet_file(tmp_path, tiny_tree):
    from vidreid.models.zoo import build_torchreid_net

    torch.save(build_torchreid_net("osnet_x0_25", 10).state_dict(), tmp_path / "osnet.pth")
    assert main(["train", "--config", "baseline/torchreid_osnet", f"data.root={tiny_tree('prid2011')}", "data.split_id=0",
                 "model.args.backbone=osnet_x0_25", f"model.args.pretrained={tmp_path / 'osnet.pth'}",
                 "schedule.epochs=1", "schedule.warmup_epochs=0", *TINY, f"train.output_dir={tmp_path / 'b'}"]) == 0
    assert (tmp_path / "b" / "metrics.json").is_file()
