"""The pairwise evaluation path equals the plain evaluator when the model's pairwise score is a
plain distance."""

from __future__ import annotations

import pytest
import torch

from vidreid.config import load_config
from vidreid.data.datasets import build_dataset
from vidreid.engine.evaluator import evaluate_split
from vidreid.errors import ConfigError
from vidreid.models import ModelOutput


class PlainPairModel(torch.nn.Module):
    """States: per-frame 16-d features; embedding: their temporal mean; pair distance: the
    Euclidean distance of the two means (so it does not actually depend on the pair)."""

    pairwise = True
    frame_decomposable = True  # so that "all" means every frame on both paths
    input_norm = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 16, 5, stride=4)

    def sequence_states(self, clip, flow=None):
        B, T = clip.shape[:2]
        return self.conv(clip.flatten(0, 1)).mean((2, 3)).view(B, T, -1)

    def frame_features(self, frames):
        return self.conv(frames).mean((2, 3))

    def head(self, pooled):
        return ModelOutput(embedding=pooled)

    def forward(self, clip):
        return ModelOutput(embedding=self.sequence_states(clip).mean(1))

    def pair_distance(self, q_states, g_states):
        q = torch.stack([s.mean(0) for s in q_states]).double()
        g = torch.stack([s.mean(0) for s in g_states]).double()
        return torch.cdist(q, g)


@pytest.mark.parametrize("strategy", ["evenly", "all"])
def test_pairwise_equals_plain(tiny_tree, strategy):
    split = build_dataset("mars", tiny_tree("mars")).split(0)
    ov = ["data.height=64", "data.width=32", "data.num_workers=0", f"data.test_sampling.strategy={strategy}",
          "data.test_sampling.seq_len=4"]
    m = PlainPairModel()
    plain = evaluate_split(m, split, load_config(None, ov))
    pair = evaluate_split(m, split, load_config(None, ov + ["test.mode=pairwise"]))
    for k in ("rank1", "rank5", "mAP", "mINP", "num_valid_queries"):
        assert pair[k] == pytest.approx(plain[k], abs=1e-9), k


def test_pairwise_mode_needs_a_pairwise_model(tiny_tree):
    from vidreid.models import create_model

    split = build_dataset("mars", tiny_tree("mars")).split(0)
    with pytest.raises(ConfigError, match="pair_distance"):
        evaluate_split(create_model("baseline", 0, backbone="resnet18"), split,
                       load_config(None, ["test.mode=pairwise", "data.num_workers=0"]))
