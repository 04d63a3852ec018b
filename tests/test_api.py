"""The practitioner's way in: the Python API, video + MOT tracks -> tracklets, embed, match,
assignment, ONNX export and the FAISS gallery index."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import vidreid
import vidreid.inference.match
import vidreid.inference.tracks
from vidreid.cli import main
from vidreid.config import load_config
from vidreid.data.datasets import build_dataset
from vidreid.engine.evaluator import evaluate_split
from vidreid.engine.trainer import Trainer
from vidreid.errors import DatasetError


@pytest.fixture(scope="module")
def demo_checkpoint(tiny_tree, tmp_path_factory):
    """The demo's recipe (demo/prid2011) at test size: one epoch on the tiny PRID tree."""
    root = tiny_tree("prid2011")
    out = tmp_path_factory.mktemp("demo_run")
    cfg = load_config("demo/prid2011", [f"data.root={root}", f"train.output_dir={out}", "schedule.epochs=1",
                                        "data.p=3", "data.k=2", "data.num_workers=0", "model.args.pretrained=null", "model.args.pretrained_anchor=0",
                                        "data.height=64", "data.width=32", "train.progress=false"])
    Trainer(cfg).fit()
    return out / "checkpoint.pt", root, cfg


def test_two_line_api_equals_the_test_protocol(demo_checkpoint):
    ckpt, root, cfg = demo_checkpoint
    model = vidreid.load(ckpt)
    split = build_dataset("prid2011", root).split(0)
    dirs = [root / Path(t.frames[0]).parent for t in split.query[:3]]
    emb = model.embed(dirs)
    assert emb.dtype == torch.float32 and emb.shape[0] == 3 and model.embedding_dim == emb.shape[1]
    assert "baseline" in repr(model)
    # the same embeddings `vidreid test` computes for those tracklets
    from vidreid.data.sampling import TemporalSampler
    from vidreid.engine.evaluator import make_test_transform
    from vidreid.inference.features import extract_features

    ts = cfg.data.test_sampling
    want = extract_features(model.model, root, split.query[:3], TemporalSampler(ts.strategy, ts.seq_len, train=False),
                            make_test_transform(cfg, model.model), num_workers=0)
    torch.testing.assert_close(emb, want, rtol=1e-5, atol=1e-5)
    # uint8 arrays of the same frames give the same embedding; a list of frame paths too
    frames = [np.stack([cv2.cvtColor(cv2.imread(str(root / f)), cv2.COLOR_BGR2RGB) for f in split.query[0].frames])]
    torch.testing.assert_close(model.embed(frames), emb[:1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model.embed([[str(root / f) for f in split.query[0].frames]]), emb[:1], rtol=1e-5, atol=1e-5)
    # ranking helper: nearest first, ties by index
    order, dist = vidreid.rank(emb, emb, metric=model.metric, topk=2)
    assert order[:, 0].tolist() == [0, 1, 2] and torch.all(dist[:, 0] <= dist[:, 1])
    with pytest.raises(DatasetError, match="tracklet 0: expected a uint8 RGB array"):
        model.embed([np.zeros((2, 8, 8, 3), np.float32)])
    with pytest.raises(DatasetError, match="is not a folder of frames"):
        model.embed([root / "nope"])


def test_load_config_name_with_weights(demo_checkpoint, tmp_path):
    ckpt, root, cfg = demo_checkpoint
    st = torch.load(ckpt, weights_only=True)["model"]
    torch.save(st, tmp_path / "w.pt")
    m = vidreid.load("demo/prid2011", weights=tmp_path / "w.pt",
                     overrides=["model.args.pretrained=null", "model.args.pretrained_anchor=0", "data.height=64", "data.width=32", "data.num_workers=0"])
    a = vidreid.load(ckpt)
    x = [np.random.default_rng(0).integers(0, 255, (5, 64, 32, 3), dtype=np.uint8)]
    torch.testing.assert_close(m.embed(x), a.embed(x, num_workers=0))


# ------------------------------------------------------------------------------ tracklets
def _video(path: Path, n: int = 12, size=(160, 120)) -> None:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    assert w.isOpened()
    for i in range(n):
        img = np.full((size[1], size[0], 3), 40, np.uint8)
        cv2.rectangle(img, (10 + 3 * i, 20), (40 + 3 * i, 90), (0, 0, 200), -1)  # person 1 walks right
        cv2.rectangle(img, (120, 10), (150, 80), (0, 200, 0), -1)  # person 2 stands
        w.write(img)
    w.release()


def _tracks(path: Path, n: int = 12) -> None:
    lines = ["# frame,id,left,top,width,height,conf,class,visibility"]
    for f in range(1, n + 1):
        lines.append(f"{f},1,{10 + 3 * (f - 1)},20,31,71,1,1,1.0")
        lines.append(f"{f},2,120,10,50,71,1,1,{0.2 if f % 2 else 0.9}")  # clipped at the right border
    lines.append("3,3,10,10,5,5,1,1,1")  # a tiny one-box track
    lines.append("4,4,10,10,30,60,0,1,1")  # conf 0 (MOT: ignore)
    path.write_text("\n".join(lines) + "\n")


def test_video_to_tracklets_filters_and_counts(tmp_path):
    _video(tmp_path / "v.avi")
    _tracks(tmp_path / "t.txt")
    rep = vidreid.inference.tracks.video_to_tracklets(
        tmp_path / "t.txt", tmp_path / "out", camera="cam1", video=tmp_path / "v.avi",
        flt=vidreid.inference.tracks.TrackFilter(min_length=3, min_conf=0.5, min_visibility=0.5))
    assert rep["tracklets_written"] == 2 and rep["frames_decoded"] == 12
    d = rep["dropped"]
    assert d["low_conf"] == 1 and d["low_visibility"] == 6 and d["short_tracks"] == 1 and d["boxes_in_short_tracks"] == 1
    assert rep["crops_written"] == 12 + 6
    rows = list(csv.DictReader(open(tmp_path / "out" / "tracklets.csv")))
    assert [(r["tracklet"], r["frames"], r["first_frame"]) for r in rows] == [("cam1/000001", "12", "1"), ("cam1/000002", "6", "2")]
    crop = cv2.imread(str(tmp_path / "out" / "cam1" / "000002" / "000002.jpg"))
    assert crop.shape[:2] == (71, 40)  # 120 + 50 clipped at the 160-pixel border
    red = cv2.imread(str(tmp_path / "out" / "cam1" / "000001" / "000005.jpg"))
    assert red.shape[:2] == (71, 31) and red[..., 2].mean() > 150  # the walking person, not the background
    # a second camera joins the manifest; the same camera again is refused (nothing overwritten)
    vidreid.inference.tracks.video_to_tracklets(tmp_path / "t.txt", tmp_path / "out", camera="cam2", video=tmp_path / "v.avi")
    assert {r["camera"] for r in csv.DictReader(open(tmp_path / "out" / "tracklets.csv"))} == {"cam1", "cam2"}
    with pytest.raises(DatasetError, match="already exists"):
        vidreid.inference.tracks.video_to_tracklets(tmp_path / "t.txt", tmp_path / "out", camera="cam1",
                                                    video=tmp_path / "v.avi")
    recs = vidreid.inference.tracks.read_tracklet_dir(tmp_path / "out")
    assert len(recs) == 2 + 2 and recs[0].frames[0].endswith("000001.jpg") and recs[0].camera == "cam1"


def test_tracklets_cli_errors_name_the_file_and_line(tmp_path, capsys):
    _video(tmp_path / "v.avi")
    (tmp_path / "bad.txt").write_text("1,1,10,20,30,40,1,1,1\n2,1,ten,20,30,40\n")
    assert main(["tracklets", "--video", str(tmp_path / "v.avi"), "--tracks", str(tmp_path / "bad.txt"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "bad.txt:2: expected numbers" in capsys.readouterr().err
    (tmp_path / "junk.avi").write_bytes(b"not a video")
    (tmp_path / "ok.txt").write_text("1,1,10,20,30,40\n")
    assert main(["tracklets", "--video", str(tmp_path / "junk.avi"), "--tracks", str(tmp_path / "ok.txt"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "junk.avi" in capsys.readouterr().err


def test_frames_folder_input(tmp_path):
    (tmp_path / "img1").mkdir()
    for i in range(1, 6):
        cv2.imwrite(str(tmp_path / "img1" / f"{i:06d}.jpg"), np.full((60, 80, 3), 20 * i, np.uint8))
    (tmp_path / "t.txt").write_text("".join(f"{i},7,5,5,20,40\n" for i in range(1, 6)) + "9,7,5,5,20,40\n")
    rep = vidreid.inference.tracks.video_to_tracklets(tmp_path / "t.txt", tmp_path / "o", camera="c", frames=tmp_path / "img1")
    assert rep["crops_written"] == 5 and rep["dropped"]["boxes_beyond_last_frame"] == 1


# ------------------------------------------------------------------------------ embed / match
def test_embed_and_match_cli(demo_checkpoint, tmp_path, capsys):
    ckpt, root, cfg = demo_checkpoint
    # the folder layout of the tiny tree: query cam_a and gallery cam_b of split 0, as tracklet folders
    split = build_dataset("prid2011", root).split(0)
    for sub, ts in (("q", split.query), ("g", split.gallery)):
        for t in ts:
            d = tmp_path / sub / f"{t.pid:04d}" / f"c{t.camid}_x"
            d.mkdir(parents=True)
            for f in t.frames:
                (d / Path(f).name).symlink_to(root / f)
    assert main(["embed", "--checkpoint", str(ckpt), "--tracklets", str(tmp_path / "q"), "--out", str(tmp_path / "q.npz")]) == 0
    assert main(["embed", "--checkpoint", str(ckpt), "--tracklets", str(tmp_path / "g"), "--out", str(tmp_path / "g.npz")]) == 0
    e = vidreid.inference.match.Embeddings.load(tmp_path / "q.npz")
    assert len(e) == len(split.query) and set(e.pids.tolist()) == {t.pid for t in split.query}
    assert main(["match", "--query", str(tmp_path / "q.npz"), "--gallery", str(tmp_path / "g.npz"), "--out",
                 str(tmp_path / "m"), "--topk", "3", "--cross-camera", "--assign", "--threshold", "1e9"]) == 0
    res = json.loads((tmp_path / "m" / "match.json").read_text())
    # the same rank-1 / mAP as the test protocol on this split
    ref = evaluate_split(vidreid.load(ckpt).model, split, cfg, "cpu")
    assert res["rank1"] == pytest.approx(ref["rank1"], abs=1e-6) and res["mAP"] == pytest.approx(ref["mAP"], abs=1e-6)
    rows = list(csv.DictReader(open(tmp_path / "m" / "ranking.csv")))
    assert len(rows) == 3 * len(split.query) and rows[0]["rank"] == "1"
    a = list(csv.DictReader(open(tmp_path / "m" / "assignment.csv")))
    # threshold infinite: every cam-b tracklet joins a cam-a identity one-to-one
    assert len({r["identity"] for r in a}) == len(split.query)
    # --index flat gives the brute-force lists
    assert main(["match", "--query", str(tmp_path / "q.npz"), "--gallery", str(tmp_path / "g.npz"), "--out",
                 str(tmp_path / "m2"), "--topk", "3", "--cross-camera", "--index", "flat"]) == 0
    r2 = list(csv.DictReader(open(tmp_path / "m2" / "ranking.csv")))
    assert [r["gallery"] for r in r2] == [r["gallery"] for r in rows]
    # no --threshold: the median distance of pairs known to be different (here: the same camera)
    capsys.readouterr()
    assert main(["match", "--query", str(tmp_path / "q.npz"), "--gallery", str(tmp_path / "g.npz"), "--out",
                 str(tmp_path / "m3"), "--assign"]) == 0
    o = capsys.readouterr().out
    thr = json.loads((tmp_path / "m3" / "match.json").read_text())["assignment_distance"]
    assert "pairs known to be different people" in o and thr["threshold_from"].startswith("median")
    assert thr["known_different_pairs"] == 2 * (len(split.query) * (len(split.query) - 1) // 2)


def test_known_pid_metrics_protocol():
    """A tracklet matched against its own folder is not a match; unknown pids give no metrics."""
    from vidreid.inference.match import Embeddings, known_pid_metrics

    def emb(x, names, cams, pids):
        n = len(names)
        return Embeddings(np.array(x, np.float32), names, cams, np.array(pids), np.zeros(n, int), np.zeros(n, int), {})

    q = emb([[0, 0], [5, 0]], ["a", "b"], ["c1", "c1"], [1, 2])
    g = emb([[0, 0], [0.5, 0], [5, 0.1]], ["a", "a2", "b2"], ["c1", "c2", "c2"], [1, 1, 2])
    r = known_pid_metrics(q, g)  # query a: its own tracklet is excluded, a2 is rank 1
    assert (r["rank1"], r["mAP"], r["valid_queries"]) == (1.0, 1.0, 2)
    r = known_pid_metrics(q, g, cross_camera=True)  # now a2 and b2 (camera c2) are the only candidates
    assert r["rank1"] == 1.0 and r["valid_queries"] == 2
    assert known_pid_metrics(q, emb([[0, 0]], ["a"], ["c1"], [1])) is None  # only itself: no valid query
    assert known_pid_metrics(emb([[0, 0]], ["x"], ["c1"], [-1]), g) is None  # unlabelled
    both = q.concat(g)
    assert len(both) == 5 and both.names[2:] == g.names and both.embeddings.shape == (5, 2)


def test_assignment_rules():
    from vidreid.inference.match import Embeddings, assign_identities, assignment_scores

    e = np.array([[0, 0], [10, 0], [0.1, 0], [10.1, 0], [5, 5]], np.float32)
    emb = Embeddings(e, ["a1", "a2", "b1", "b2", "b3"], ["A", "A", "B", "B", "B"], np.array([1, 2, 1, 2, 3]),
                     np.full(5, -1), np.full(5, -1), {})
    ident = assign_identities(emb, threshold=1.0)
    assert ident.tolist() == [0, 1, 0, 1, 2]
    s = assignment_scores(ident, emb.pids)
    assert s["pair_f1"] == 1.0 and s["purity"] == 1.0
    # in one view, tracks overlapping in time are never linked, even when alike
    one = Embeddings(e[:3], ["t1", "t2", "t3"], ["V"] * 3, np.array([1, 2, 1]), np.array([0, 50, 5]),
                     np.array([10, 60, 20]), {})
    assert assign_identities(one, 1.0, groups="tracklet").tolist() == [0, 1, 2]  # t3 overlaps t1: apart
    one.first_frame[2], one.last_frame[2] = 70, 80
    assert assign_identities(one, 1.0, groups="tracklet").tolist() == [0, 1, 0]
    # average linkage: a group joins when its average distance is within the threshold, and a
    # known-different pair anywhere in two groups keeps them apart however close the rest is
    line = Embeddings(np.array([[0, 0], [1, 0], [2.5, 0], [-0.9, 0]], np.float32), ["p", "q", "r", "s"],
                      ["A", "B", "C", "A"], np.array([1, 1, 1, 2]), np.full(4, -1), np.full(4, -1), {})
    assert assign_identities(line, 1.0).tolist() == [0, 0, 1, 2]  # r: 2.5 and 1.5 from p, q (average 2.0)
    assert assign_identities(line, 2.0).tolist() == [0, 0, 0, 1]  # s is camera A, as p: never with p's group


def test_automatic_threshold_is_the_median_of_known_different_pairs():
    from vidreid.inference.match import Embeddings, assignment_distances, auto_threshold, known_different

    e = Embeddings(np.eye(6, dtype=np.float32), [f"t{i}" for i in range(6)], ["A", "A", "A", "B", "B", "B"],
                   np.arange(6), np.array([0, 5, 50, 0, 0, 100]), np.array([10, 20, 60, 10, 10, 110]), {})
    diff = known_different(e, "tracklet")  # A: t0-t1 overlap; B: t3-t4 overlap
    assert np.argwhere(np.triu(diff)).tolist() == [[0, 1], [3, 4]]
    assert np.triu(known_different(e, "camera")).sum() == 6  # every same-camera pair
    D = np.arange(36, dtype=float).reshape(6, 6)
    D = D + D.T
    thr, st = auto_threshold(D, diff)
    assert thr == np.median([D[0, 1], D[3, 4]]) and st["known_different_pairs"] == 2
    lone = Embeddings(np.eye(2, dtype=np.float32), ["a", "b"], ["A", "B"], np.zeros(2, int), np.zeros(2, int),
                      np.ones(2, int), {})
    with pytest.raises(ValueError, match="give --threshold"):
        auto_threshold(np.zeros((2, 2)), known_different(lone, "tracklet"))
    d, how = assignment_distances(e, "cosine")  # re-ranked among themselves: symmetric, zero diagonal
    assert how["rerank"] and how["k1"] == 2 and np.allclose(d, d.T) and np.all(np.diag(d) == 0)


def test_rerank_of_a_set_against_itself_counts_each_item_once():
    """gf=None re-ranks the queries among themselves; passing the set twice would make every
    item its own duplicate's nearest neighbour and change the k-reciprocal sets."""
    from vidreid.metrics.rerank import k_reciprocal_rerank

    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 8)).astype(np.float32)
    self_d = k_reciprocal_rerank(x, None, k1=3, k2=2)
    assert self_d.shape == (12, 12)
    twice = k_reciprocal_rerank(x, x, k1=3, k2=2)
    assert not np.allclose(self_d, twice)
    # the query rows of a split equal the matching rows of the whole set when the gallery is the rest
    full = k_reciprocal_rerank(x[:4], x[4:], k1=3, k2=2)
    assert np.allclose(k_reciprocal_rerank(x, None, k1=3, k2=2)[:4, 4:], full, atol=1e-6)


# ------------------------------------------------------------------------------ export
@pytest.mark.parametrize("name,args,flow,dynamic", [
    ("baseline", dict(backbone="resnet18"), False, True),
    ("baseline", dict(backbone="resnet18", spatial_pool="gem"), False, True),
    ("strf", dict(block="p3dc", layers=[1, 1, 1, 1], blocks3d=[[], [0], [0], []], strf_blocks=[[0], [0], [0], [0]],
                  strf_stages=[2, 3], pretrained=None), False, True),
    ("rru_stim", dict(backbone="resnet18", pretrained=None, height=64, width=32, aux_classifier=False), False, False),
    ("star", dict(backbone="resnet18", pretrained=None, hidden=16), True, False),
])
def test_onnx_export_matches_pytorch(name, args, flow, dynamic, tmp_path):
    import onnxruntime as ort

    from vidreid.inference.export import export_onnx
    from vidreid.models import create_model

    m = create_model(name, 0, **args).eval()
    rep = export_onnx(m, tmp_path / "m.onnx", 64, 32, seq_len=4, flow=flow)
    assert rep["dynamic_frames"] is dynamic and rep["max_rel_l2"] <= 1e-4
    assert (rep["why_fixed"] is None) is dynamic
    # an independent run on fresh random clips
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"))
    t = 7 if dynamic else 4
    x = torch.randn(3, t, 3, 64, 32)
    feeds = {"clip": x.numpy()}
    kw = {}
    if flow:
        f = torch.randn(3, t, 2, 64, 32)
        feeds["flow"], kw = f.numpy(), {"flow": f}
    got = sess.run(None, feeds)[0]
    with torch.inference_mode():
        ref = m(x, **kw).embedding.numpy()
    assert np.linalg.norm(got - ref) / np.linalg.norm(ref) <= 1e-4


def test_export_refusal_says_why(tmp_path):
    from vidreid.inference.export import ExportError, export_onnx
    from vidreid.models.output import ModelOutput

    class Unexportable(torch.nn.Module):  # an operator ONNX has no equivalent for
        def forward(self, clip, **kw):
            x = clip.mean(1).flatten(2)[..., :8]
            return ModelOutput(embedding=torch.linalg.svdvals(x @ x.transpose(1, 2)))

    with pytest.raises(ExportError, match="Unexportable cannot be exported to ONNX.*svd"):
        export_onnx(Unexportable(), tmp_path / "a.onnx", 16, 8, seq_len=4)
    assert not (tmp_path / "a.onnx").exists()


def test_astpn_exports_with_its_spatial_pyramid(tmp_path):
    """ASTPN's adaptive pyramid bins export as static slices (the same values), T fixed."""
    import torch.nn.functional as F

    from vidreid.inference.export import export_onnx
    from vidreid.models import create_model
    from vidreid.models.astpn import _adaptive_max_pool_bins

    x = torch.randn(2, 3, 13, 7)
    for m in (8, 4, 2, 1):
        assert torch.equal(_adaptive_max_pool_bins(x, m), F.adaptive_max_pool2d(x, m))
    rep = export_onnx(create_model("astpn", 0, height=64, width=32), tmp_path / "a.onnx", 64, 32, seq_len=4, flow=True)
    assert rep["dynamic_frames"] is False and rep["max_rel_l2"] <= 1e-4 and "unrolled" in rep["why_fixed"]


def test_export_cli(demo_checkpoint, tmp_path):
    ckpt, _, _ = demo_checkpoint
    assert main(["export", "--checkpoint", str(ckpt), "--format", "onnx", "--out", str(tmp_path / "d.onnx")]) == 0
    assert (tmp_path / "d.onnx").stat().st_size > 1000


def _rgb_frames(folder):
    return [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(Path(folder).iterdir())]


def test_onnx_carries_its_preprocessing_and_embeds_from_the_file_alone(demo_checkpoint, tmp_path, capsys):
    """issue 25: a user who has only the .onnx gets vidreid's embedding (mean / std, size, layout,
    clip rule from the metadata), with float or uint8 input."""
    from vidreid.inference.export import embed_frames, read_metadata

    ckpt, root, cfg = demo_checkpoint
    for name, extra in (("f.onnx", []), ("u.onnx", ["--uint8-input"])):
        assert main(["export", "--checkpoint", str(ckpt), "--out", str(tmp_path / name), *extra]) == 0
        rep = json.loads(capsys.readouterr().out)
        assert rep["max_rel_l2"] <= 1e-4  # parity with PyTorch (uint8: the normalisation inside the graph)
    meta = read_metadata(tmp_path / "f.onnx")
    assert (meta["height"], meta["width"], meta["color"]) == (64, 32, "RGB")
    assert meta["mean"] == pytest.approx([0.5, 0.5, 0.5]) and meta["distance"] == cfg.test.distance  # EfficientNet-Lite0's
    assert meta["embedding_dim"] == 1280 and meta["input_frames"] == "dynamic" and "data:" in meta["config"]
    assert read_metadata(tmp_path / "u.onnx")["input_dtype"] == "uint8"
    assert rep["inputs"]["clip"] == ["batch", "frames", 64, 32, 3]
    model = vidreid.load(ckpt)
    split = build_dataset("prid2011", root).split(0)
    for t in split.query[:2]:
        folder = root / Path(t.frames[0]).parent
        ref = model.embed([folder])[0].numpy()
        for name in ("f.onnx", "u.onnx"):
            got = embed_frames(tmp_path / name, _rgb_frames(folder))
            assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 1e-4, name


def test_uint8_input_is_refused_for_yuv_models(tmp_path):
    from vidreid.config import load_config
    from vidreid.inference.export import ExportError, preprocessing_spec
    from vidreid.models import create_model

    cfg = load_config("astpn/prid2011")
    with pytest.raises(ExportError, match="uint8-input"):
        preprocessing_spec(create_model("astpn", 0, height=64, width=32), cfg, uint8_input=True)


def test_openvino_export_parity_and_metadata(demo_checkpoint, tmp_path, capsys):
    pytest.importorskip("openvino", reason="openvino is not installed (pip install openvino)")
    from vidreid.inference.export import read_openvino_metadata

    ckpt, _, _ = demo_checkpoint
    assert main(["export", "--checkpoint", str(ckpt), "--format", "openvino", "--out", str(tmp_path / "m.xml")]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["max_rel_l2"] <= 1e-4 and all(p["rel_l2"] <= 1e-4 for p in rep["openvino_parity"])
    assert (tmp_path / "m.bin").is_file() and read_openvino_metadata(tmp_path / "m.xml")["embedding_dim"] == 1280
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left behind
    assert main(["export", "--checkpoint", str(ckpt), "--format", "openvino", "--out", str(tmp_path / "m.onnx")]) == 2


# ------------------------------------------------------------------------------ index
def test_flat_index_is_exact_and_ivf_recall():
    from vidreid.inference.index import GalleryIndex

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(50, 32)).astype(np.float32)
    g = (centres[rng.integers(0, 50, 3000)] + 0.3 * rng.normal(size=(3000, 32))).astype(np.float32)
    q = (centres[rng.integers(0, 50, 40)] + 0.3 * rng.normal(size=(40, 32))).astype(np.float32)
    for metric in ("euclidean", "cosine"):
        idx, dist = GalleryIndex(32, "flat", metric).add(g).search(q, 10)
        ref_i, ref_d = vidreid.rank(q, g, metric=metric, topk=10)
        assert (idx == ref_i.numpy()).mean() > 0.99  # float32 near-ties aside
        np.testing.assert_allclose(dist, ref_d.numpy(), rtol=1e-4, atol=1e-4)
    exact = GalleryIndex(32, "flat").add(g).search(q, 10)[0]
    ivf = GalleryIndex(32, "ivf", nlist=32, nprobe=32).add(g).search(q, 10)[0]  # every cell: exact
    assert np.array_equal(np.sort(ivf, 1), np.sort(exact, 1))
    hnsw = GalleryIndex(32, "hnsw").add(g).search(q, 10)[0]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(hnsw, exact)])
    assert recall > 0.9


def test_cli_without_config_and_options_after_overrides(demo_checkpoint, tmp_path, capsys):
    """`vidreid test` / `train --resume` take the config from the checkpoint; key=value overrides
    may sit before or after options; --root sets data.root; --version."""
    ckpt, root, _ = demo_checkpoint
    assert main(["test", "--checkpoint", str(ckpt), "data.num_workers=0", "--out", str(tmp_path / "t"),
                 "test.batch_size=8", "--root", str(root)]) == 0
    assert json.loads((tmp_path / "t" / "metrics.json").read_text())["summary"]["rank1"] >= 0
    assert main(["test", "--out", str(tmp_path / "t2")]) == 2
    assert "give --config FILE" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith(f"vidreid {vidreid.__version__}")
    with pytest.raises(SystemExit):
        main(["test", "--checkpoint", str(ckpt), "--bogus-option"])
