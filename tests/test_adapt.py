"""Label-free adaptation (issue 24, ``vidreid adapt``): the association loss's negatives and
associations, the pretrained BatchNorm statistics kept with ``train.freeze_bn_stats``, and the
command end to end on a user's tracklet folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidreid.cli import main
from vidreid.data.datasets import build_dataset
from vidreid.engine.distill import FeatureDistillation
from vidreid.losses.metric import TrackletAssociationLoss
from vidreid.models import create_model
from vidreid.models.registry import train_mode

# camera, first frame, last frame of five tracklets: A and B overlap in camera 1 (two people),
# C is camera 1 later (maybe A or B re-entering), D and E are camera 2
META = np.array([[1, 0, 10], [1, 5, 15], [1, 20, 30], [2, 0, 10], [2, 0, 10]])
A, B, C, D, E = range(5)


def _loss(**kw) -> TrackletAssociationLoss:
    loss = TrackletAssociationLoss(num_classes=5, class_meta=META, feat_dim=4, **kw)
    rows = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0.8, 0.0, 0.6, 0], [0.99, 0.1, 0, 0], [0.1, 0.99, 0, 0]])
    loss.lut.copy_(F.normalize(rows, dim=1))
    return loss


def test_only_same_camera_overlapping_tracklets_are_negatives_and_never_associated():
    loss = _loss()
    assert loss.negative[A].tolist() == [True, True, False, False, False]  # itself and B (same time, same camera)
    assert loss.compatible[A].tolist() == [False, False, True, True, True]  # C (later, same camera), D, E
    assert not loss.compatible[A, B] and not loss.compatible[B, A]


def test_the_loss_and_identity_assignment_apply_one_same_camera_rule():
    """TrackletAssociationLoss's certain negatives and match.known_different (groups=tracklet) come
    from one rule (data.tracklet.camera_time_relations): one camera, frame ranges overlapping."""
    from vidreid.inference.match import Embeddings, known_different

    e = Embeddings(embeddings=np.eye(5, dtype=np.float32), names=list("ABCDE"), cameras=[str(c) for c in META[:, 0]],
                   pids=np.full(5, -1), first_frame=META[:, 1], last_frame=META[:, 2], meta={})
    off_diagonal = ~np.eye(5, dtype=bool)
    assert (known_different(e, "tracklet") == (_loss().negative.numpy() & off_diagonal)).all()
    # a range that is not known: the loss counts one camera as different people, assignment does not
    unknown = META.copy()
    unknown[C, 1:] = -1
    lo = TrackletAssociationLoss(num_classes=5, class_meta=unknown, feat_dim=4)
    assert lo.negative[A, C] and not lo.compatible[A, C]
    e2 = Embeddings(embeddings=e.embeddings, names=e.names, cameras=e.cameras, pids=e.pids,
                    first_frame=unknown[:, 1], last_frame=unknown[:, 2], meta={})
    assert not known_different(e2, "tracklet")[A, C]


def test_mutual_nearest_compatible_tracklets_are_associated():
    loss = _loss()
    # A<->D and B<->E are mutual nearest; C's nearest is A, whose nearest is D: no partner
    assert loss._partners(torch.tensor([A, B, C, D, E])).tolist() == [D, E, -1, A, B]
    strict = _loss(min_similarity=0.999)
    assert strict._partners(torch.tensor([A, D])).tolist() == [-1, -1]  # cos(A, D) = 0.995 < 0.999


def test_discrimination_ignores_tracklets_that_may_be_the_same_person():
    x = torch.tensor([[1.0, 0.2, 0.1, 0.0]])
    base = _loss(association_weight=0.0, momentum=1.0)(x, torch.tensor([A]))
    moved_c = _loss(association_weight=0.0, momentum=1.0)
    moved_c.lut[C] = torch.tensor([1.0, 0.2, 0.1, 0.0]) / torch.tensor([1.0, 0.2, 0.1, 0.0]).norm()
    assert moved_c(x, torch.tensor([A])).item() == pytest.approx(base.item())  # C is not a negative of A
    moved_b = _loss(association_weight=0.0, momentum=1.0)
    moved_b.lut[B] = moved_c.lut[C]
    assert moved_b(x, torch.tensor([A])).item() > base.item() + 0.1  # B is


def test_association_pulls_towards_the_partner():
    x = torch.tensor([[0.0, 0.0, 0.0, 1.0]], requires_grad=True)
    loss = _loss(discrimination_weight=0.0)
    loss(x, torch.tensor([A])).backward()
    assert x.grad[0, 0] < 0  # descending the gradient moves x towards D's row (mostly axis 0)


def test_the_loss_needs_the_unsupervised_class_meta():
    with pytest.raises(ValueError, match="train.unsupervised"):
        TrackletAssociationLoss(num_classes=3, class_meta=None, feat_dim=4)


def _backbone_bn(model):
    return [m for n, m in model.named_modules() if n.startswith("backbone.") and isinstance(m, torch.nn.BatchNorm2d)]


def test_freeze_bn_stats_keeps_the_pretrained_statistics_and_lets_the_others_learn():
    torch.manual_seed(0)
    m = create_model("baseline", num_classes=4, backbone="resnet18", pretrained=None)
    before = [bn.running_mean.clone() for bn in _backbone_bn(m)]
    neck = m.neck.running_mean.clone()
    train_mode(m, pretrained_bn_eval=True)
    assert m.training and all(not bn.training for bn in _backbone_bn(m)) and m.neck.training
    m(torch.rand(2, 3, 3, 64, 32))
    assert all(torch.equal(a, bn.running_mean) for a, bn in zip(before, _backbone_bn(m)))
    assert not torch.equal(neck, m.neck.running_mean)
    train_mode(m)  # the default: batch statistics everywhere, running statistics move
    m(torch.rand(2, 3, 3, 64, 32))
    assert not torch.equal(before[0], _backbone_bn(m)[0].running_mean)


def test_the_distillation_teacher_runs_as_the_student():
    torch.manual_seed(0)
    m = create_model("baseline", num_classes=4, backbone="resnet18", pretrained=None)
    train_mode(m, pretrained_bn_eval=True)
    d = FeatureDistillation(m, 1.0, freeze_bn_stats=True)
    clip = torch.rand(2, 3, 3, 64, 32)
    out = m(clip)
    assert d.term(out, clip).item() == pytest.approx(0.0, abs=1e-10)  # identical at the first step
    assert all(not bn.training for bn in _backbone_bn(d.teacher))


@pytest.fixture(scope="module")
def user_tracklets(tiny_tree, tmp_path_factory):
    """A user's tracklet folder (``<camera>/<track>/<frames>``, no labels) made of the tiny PRID
    tree's split-0 test tracklets: camera cam_a and cam_b."""
    root = tiny_tree("prid2011")
    out = tmp_path_factory.mktemp("user_trk")
    split = build_dataset("prid2011", root).split(0)
    for t in split.query + split.gallery:
        d = out / f"cam{t.camid}" / f"track{t.pid:04d}"
        d.mkdir(parents=True)
        for f in t.frames:
            (d / Path(f).name).symlink_to(root / f)
    return out


TINY = ["data.height=64", "data.width=32", "data.num_workers=0", "train.progress=false",
        "model.args={backbone: resnet18, pretrained: null, pretrained_anchor: 0}"]


def test_adapt_runs_on_a_tracklet_folder_and_its_model_embeds(user_tracklets, tmp_path, capsys):
    out = tmp_path / "adapted"
    assert main(["adapt", "--checkpoint", "demo/prid2011", "--tracklets", str(user_tracklets), "--out", str(out),
                 *TINY, "schedule.epochs=1", "train.freeze_bn_stats=true"]) == 0
    assert "adapted model:" in capsys.readouterr().out
    st = torch.load(out / "checkpoint.pt", weights_only=True)
    assert st["train_identities"] == {}  # no identity label was read
    assert st["config"]["loss"][0]["name"] == "tracklet_association"
    assert main(["embed", "--checkpoint", str(out / "checkpoint.pt"), "--tracklets", str(user_tracklets),
                 "--out", str(tmp_path / "e.npz")]) == 0


def test_adapt_at_near_zero_lr_with_frozen_statistics_leaves_the_backbone_as_it_started(user_tracklets, tmp_path):
    """The measured cause of adaptation hurting on PETS (docs/RESULTS.md): BatchNorm statistics
    drifting to the user's crops even at lr ~0. With train.freeze_bn_stats they stay put."""
    ck = {}
    for frozen in (True, False):
        out = tmp_path / f"run_{frozen}"
        assert main(["adapt", "--checkpoint", "demo/prid2011", "--tracklets", str(user_tracklets), "--out", str(out),
                     *TINY, "schedule.epochs=1", "optim.lr=1e-12", f"train.freeze_bn_stats={str(frozen).lower()}",
                     "train.seed=0"]) == 0
        ck[frozen] = torch.load(out / "checkpoint.pt", weights_only=True)["model"]
    start = create_model("baseline", num_classes=0, backbone="resnet18", pretrained=None).state_dict()
    keys = [k for k in start if k.startswith("backbone.") and k.endswith("running_mean")]
    assert keys and all(torch.equal(ck[True][k], start[k]) for k in keys)
    assert not all(torch.equal(ck[False][k], start[k]) for k in keys)


def test_adapt_refuses_a_folder_with_one_tracklet(tmp_path, capsys, user_tracklets):
    one = tmp_path / "one" / "cam1" / "t1"
    one.mkdir(parents=True)
    src = next(p for p in sorted(user_tracklets.rglob("track*")) if p.is_dir())
    for f in src.iterdir():
        (one / f.name).symlink_to(f.resolve())
    code = main(["adapt", "--checkpoint", "demo/prid2011", "--tracklets", str(tmp_path / "one"),
                 "--out", str(tmp_path / "o"), *TINY])
    err = capsys.readouterr().err
    assert code == 2 and "at least 2 tracklets" in err and "Traceback" not in err


def _toy_adaptation(seed: int, association_weight: float, steps: int = 300) -> tuple[float, float]:
    """Synthetic tracklet features of 20 people in 2 cameras: 8 identity dimensions shared by the
    cameras, 24 dimensions of per-camera appearance (what a camera does to a person: light, pose,
    background), frame noise. A linear embedding starts at the identity; the association loss
    trains it on 4-frame clips without labels. Returns cross-camera rank-1 before and after."""
    P, F, ds, dn = 20, 8, 8, 24
    g = torch.Generator().manual_seed(seed)
    x = torch.cat([torch.randn(P, ds, generator=g)[None].expand(2, P, ds), 0.8 * torch.randn(2, P, dn, generator=g)], 2)
    frames = x[:, :, None] + 0.3 * torch.randn(2, P, F, ds + dn, generator=g)
    W = torch.nn.Linear(ds + dn, ds + dn, bias=False)
    torch.nn.init.eye_(W.weight)

    def rank1() -> float:
        with torch.no_grad():
            e = W(frames).mean(2)
        return (torch.cdist(e[0], e[1]).argmin(1) == torch.arange(P)).float().mean().item()

    meta = np.array([[c + 1, -1, -1] for c in range(2) for _ in range(P)])  # no time stamps (as PRID)
    loss = TrackletAssociationLoss(2 * P, meta, feat_dim=ds + dn, min_similarity=0.0,
                                   association_weight=association_weight)
    with torch.no_grad():
        loss.fill_from(W(frames).mean(2).reshape(2 * P, -1), torch.arange(2 * P))
    opt = torch.optim.Adam(W.parameters(), lr=1e-2)
    start = rank1()
    for _ in range(steps):
        idx = torch.randperm(2 * P, generator=g)[:16]
        clip = frames[(idx // P)[:, None], (idx % P)[:, None], torch.randint(0, F, (16, 4), generator=g)]
        out = loss(W(clip).mean(1), idx)
        opt.zero_grad()
        out.backward()
        opt.step()
    return start, rank1()


def test_adaptation_raises_cross_camera_rank1_on_synthetic_tracklets():
    """The association term does the work: with it rank-1 rises on every seed; discrimination
    alone (association_weight 0) does not raise it."""
    runs = [_toy_adaptation(s, 1.0) for s in range(5)]
    assert all(after >= before for before, after in runs)
    assert np.mean([a - b for b, a in runs]) >= 0.15  # measured: +0.24 (0.48 -> 0.72)
    alone = [_toy_adaptation(s, 0.0) for s in range(5)]
    assert np.mean([a - b for b, a in alone]) <= 0.0
