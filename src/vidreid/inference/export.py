"""Export a model to ONNX, checked against PyTorch with ONNX Runtime.

The exported graph maps a normalised clip ``clip`` float32 (B, T, 3, H, W) (the model's test
transform already applied: resize, scale to [0, 1], mean / std; models with optical flow also
take ``flow`` float32 (B, T, 2, H, W)) to ``embedding`` float32 (B, D): the model's clip
forward in eval mode. The batch is always dynamic. The clip length is dynamic where the model
allows: the export is checked at a second clip length, and when the graph does not generalise
(a recurrent model's loop over time is unrolled when traced), it is exported again with T fixed
and the report says why. An embedding of a long tracklet from a fixed-T graph is a clip-level
embedding, not the all-frame protocol of ``vidreid test``.

Exporter: the TorchScript-based ``torch.onnx.export(..., dynamo=False)`` by default (fast,
and it handles every vidreid model); ``exporter="dynamo"`` uses ``torch.export`` (needs
``onnxscript``). TorchScript files are not offered: ``torch.jit`` is deprecated upstream.

Self-describing files: the preprocessing the graph expects (:func:`preprocessing_spec`: input
layout, size, colour space, mean / std, value range, how a tracklet becomes clips, the distance
the model is tested with, the embedding size, the vidreid version and the full config) is stored
in the ONNX ``metadata_props`` (one key per item, prefixed ``vidreid.``, values JSON) and in the
report; :func:`read_metadata` reads it back and :func:`embed_frames` embeds a tracklet from the
file alone. ``uint8_input`` bakes the normalisation into the graph: the input is then the
decoded frames, uint8 RGB (B, T, H, W, 3). :func:`export_openvino` converts the checked ONNX
graph to OpenVINO IR (``openvino`` package) with the same parity check and metadata.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import VidReIDError
from ..fileio import WriteError, atomic_path

PARITY_TOL = 1e-4


class ExportError(VidReIDError):
    """The model cannot be exported, or the export does not match PyTorch."""


class _EmbeddingOnly(torch.nn.Module):
    """The model's embedding; with ``norm`` = (mean, std) the input is uint8 RGB (B, T, H, W, 3)
    and the test transform's scaling and normalisation run inside the graph."""

    def __init__(self, model: torch.nn.Module, flow: bool, norm=None):
        super().__init__()
        self.model, self.flow, self.uint8 = model, flow, norm is not None
        if norm is not None:
            self.register_buffer("mean", torch.tensor(norm[0], dtype=torch.float32).view(1, 1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(norm[1], dtype=torch.float32).view(1, 1, 3, 1, 1))

    def forward(self, clip, flow=None):
        if self.uint8:
            clip = (clip.permute(0, 1, 4, 2, 3).float() / 255.0 - self.mean) / self.std
        return self.model(clip, flow=flow).embedding if self.flow else self.model(clip).embedding


def preprocessing_spec(model: torch.nn.Module, cfg, uint8_input: bool = False, checkpoint: str | None = None) -> dict:
    """What a user of the exported graph must do to a tracklet's frames, as the ``vidreid test``
    transform does (data/transforms.py ``ClipTransform``, engine/evaluator.py ``make_test_transform``).

    Returns:
        a dict of JSON-able values: ``input_layout``, ``input_dtype``, ``height``, ``width``
        (the graph's input size, pixels), ``resize``, ``color`` (``RGB`` or ``YUV_std``), ``mean`` and
        ``std`` (per RGB channel, on values scaled to [0, 1]; None for YUV_std), ``value_range``,
        ``clip_rule`` (how a tracklet's frames become clips and one embedding), ``test_sampling``,
        ``distance`` (euclidean or cosine: what the model was tested with), ``embedding_dim`` (set by
        the exporter), ``flow`` (None or how the flow input is made), ``vidreid_version``,
        ``model``, ``checkpoint``, ``config`` (the full config, YAML).
    Raises:
        ExportError: ``uint8_input`` for a model whose input is not mean / std normalised RGB.
    """
    from omegaconf import OmegaConf

    from .. import __version__

    color = getattr(model, "input_color", "rgb")
    mean, std = getattr(model, "input_norm", ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)))
    crop = int(cfg.data.augment.crop)
    h, w = int(cfg.data.height) - crop, int(cfg.data.width) - crop
    if uint8_input and color != "rgb":
        raise ExportError(f"--uint8-input: {type(model).__name__} takes {color} input (each frame's YUV channels "
                          "standardised), not mean / std normalised RGB; export without --uint8-input")
    ts = cfg.data.test_sampling
    if getattr(model, "frame_decomposable", False) or hasattr(model, "stream_frames"):
        rule = ("all frames of the tracklet as one clip (T = its length) gives the vidreid test embedding, where the "
                "graph's clip length is dynamic (input_frames); with a fixed T, clips of T frames averaged by real "
                "frames approximate it")
    elif getattr(model, "clip_decomposable", False):
        rule = (f"consecutive clips of {ts.seq_len} frames; vidreid test averages per-frame features before the head, "
                "so averaging clip embeddings (weighted by frames) approximates it")
    else:
        rule = (f"consecutive clips of {ts.seq_len} frames, the last padded by repeating frames; the tracklet "
                "embedding is the mean of the clip embeddings weighted by each clip's real frames")
    if uint8_input:
        layout, dtype, vr = "(B, T, H, W, 3): decoded frames", "uint8", "0..255 (normalisation inside the graph)"
    elif color == "rgb":
        layout, dtype, vr = "(B, T, 3, H, W)", "float32", "(x / 255 - mean) / std per RGB channel"
    else:
        layout, dtype, vr = "(B, T, 3, H, W)", "float32", ("RGB -> YUV (OpenCV COLOR_RGB2YUV), then each channel of "
                                                          "each frame minus its mean, over its standard deviation")
    return {"input_layout": layout, "input_dtype": dtype, "height": h, "width": w,
            "resize": (f"OpenCV INTER_LINEAR to {int(cfg.data.height)} x {int(cfg.data.width)} (H x W)"
                       + (f", then the centre {h} x {w}" if crop else "")),
            "color": "RGB" if color == "rgb" else "YUV_std",
            "mean": list(mean) if color == "rgb" else None, "std": list(std) if color == "rgb" else None,
            "value_range": vr, "clip_rule": rule, "test_sampling": dict(ts),
            "distance": str(cfg.test.distance), "embedding_dim": None,
            "flow": (None if not cfg.data.flow else f"a second input flow float32 (B, T, 2, H, W): {cfg.data.flow} "
                     "optical flow in pixels (x, y) between consecutive frames (vidreid flow)"),
            "vidreid_version": __version__, "model": str(cfg.model.name), "checkpoint": checkpoint,
            "config": OmegaConf.to_yaml(cfg)}


def _write_metadata(path: Path, spec: dict) -> None:
    import onnx

    m = onnx.load(str(path))
    del m.metadata_props[:]
    for k, v in spec.items():
        e = m.metadata_props.add()
        e.key, e.value = f"vidreid.{k}", json.dumps(v)
    onnx.save(m, str(path))


def read_metadata(path: str | Path) -> dict:
    """The preprocessing spec stored in an exported ONNX file (:func:`preprocessing_spec`).

    Raises:
        ExportError: the file is not ONNX, or carries no vidreid metadata (names the file).
    """
    import onnx

    try:
        m = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise ExportError(f"{path}: not an ONNX file ({type(e).__name__})") from None
    out = {p.key[len("vidreid."):]: json.loads(p.value) for p in m.metadata_props if p.key.startswith("vidreid.")}
    if not out:
        raise ExportError(f"{path}: no vidreid metadata (exported by an older vidreid or another tool)")
    return out


def embed_frames(path: str | Path, frames: list[np.ndarray], session=None) -> np.ndarray:
    """One tracklet's embedding from an exported ONNX file and its metadata alone.

    Args:
        frames: the tracklet's frames in order, uint8 RGB (H, W, 3) each, any size.
        session: an ``onnxruntime.InferenceSession`` of ``path`` to reuse.

    Returns:
        float32 (D,). Follows ``clip_rule`` for models whose whole tracklet is one clip; other
        models get clips of ``test_sampling.seq_len`` frames averaged by real frames.

    Raises:
        ExportError: no metadata, a flow model (give the flow yourself), or no frames.
    """
    import cv2
    import onnxruntime as ort

    spec = read_metadata(path)
    if spec.get("flow"):
        raise ExportError(f"{path}: the model takes optical flow too; embed_frames handles RGB-only models")
    if not frames:
        raise ExportError("embed_frames: no frames")
    sess = session or ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    cfg_h, cfg_w = (int(x) for x in spec["resize"].split(" to ")[1].split(" (")[0].split(" x "))
    h, w = spec["height"], spec["width"]
    x = np.stack([cv2.resize(np.ascontiguousarray(f), (cfg_w, cfg_h), interpolation=cv2.INTER_LINEAR) for f in frames])
    if (cfg_h, cfg_w) != (h, w):
        dy, dx = (cfg_h - h) // 2, (cfg_w - w) // 2
        x = x[:, dy:dy + h, dx:dx + w]
    if spec["input_dtype"] == "uint8":
        clip = x
    elif spec["color"] == "RGB":
        clip = ((x.astype(np.float32) / 255.0 - np.array(spec["mean"], np.float32)) / np.array(spec["std"], np.float32))
        clip = clip.transpose(0, 3, 1, 2)
    else:
        yuv = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2YUV) for f in x]).astype(np.float32)
        clip = ((yuv - yuv.mean((1, 2), keepdims=True)) / np.maximum(yuv.std((1, 2), keepdims=True), 1e-6))
        clip = clip.transpose(0, 3, 1, 2)
    clip = np.ascontiguousarray(clip)
    inp = sess.get_inputs()[0]
    fixed_t = inp.shape[1] if isinstance(inp.shape[1], int) else None
    if spec["clip_rule"].startswith("all frames") and fixed_t is None:
        return sess.run(None, {"clip": clip[None]})[0][0]
    t = fixed_t or int(spec["test_sampling"]["seq_len"])
    embs, weights = [], []
    for s in range(0, len(clip), t):
        c = clip[s:s + t]
        real = len(c)
        if real < t:
            c = c[np.minimum(np.arange(t) * real // t, real - 1)]  # stretched in place by repeating frames
        embs.append(sess.run(None, {"clip": c[None]})[0][0])
        weights.append(real)
    return np.average(np.stack(embs), axis=0, weights=weights).astype(np.float32)


def _rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))


def _example_clip(wrapper, b: int, t: int, height: int, width: int, g: torch.Generator) -> torch.Tensor:
    if getattr(wrapper, "uint8", False):
        return torch.randint(0, 256, (b, t, height, width, 3), generator=g, dtype=torch.uint8)
    return torch.randn(b, t, 3, height, width, generator=g)


def _onnx_runner(path: Path):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda feeds: sess.run(None, feeds)[0]


def _check(wrapper, path: Path, shapes: list[tuple[int, int]], height: int, width: int, flow: bool, seed: int = 0,
           runner=None) -> list[dict]:
    run = (runner or _onnx_runner)(path)
    g = torch.Generator().manual_seed(seed)
    out = []
    for b, t in shapes:
        x = _example_clip(wrapper, b, t, height, width, g)
        feeds = {"clip": x.numpy()}
        args = (x,)
        if flow:
            f = torch.randn(b, t, 2, height, width, generator=g)
            feeds["flow"] = f.numpy()
            args = (x, f)
        try:
            with torch.inference_mode():
                ref = wrapper(*args).float().numpy()
        except Exception as e:  # the model itself takes only one clip length (e.g. STAN's num_frames)
            out.append({"batch": b, "frames": t, "rel_l2": float("inf"),
                        "error": f"PyTorch: {(str(e).splitlines() or [type(e).__name__])[0][:200]}"})
            continue
        try:
            got = run(feeds)
            err = _rel_l2(got, ref) if got.shape == ref.shape else float("inf")
        except Exception as e:  # onnxruntime raises its own types for shape mismatches
            err = float("inf")
            out.append({"batch": b, "frames": t, "rel_l2": err, "error": str(e).splitlines()[0][:200]})
            continue
        out.append({"batch": b, "frames": t, "rel_l2": err})
    return out


def export_onnx(model: torch.nn.Module, out: str | Path, height: int, width: int, seq_len: int = 8,
                flow: bool = False, opset: int = 17, exporter: str = "legacy", spec: dict | None = None,
                uint8_input: bool = False) -> dict:
    """Export ``model`` (eval mode, on the CPU) to ``out`` and check it with ONNX Runtime.

    Args:
        model: a vidreid model.
        out: the ``.onnx`` path (written atomically).
        height, width: the input size (the config's ``data.height`` / ``data.width``).
        seq_len: T of the example clip (and of the graph when T cannot be dynamic).
        flow: the model takes optical flow (a second input ``flow``).
        opset: ONNX opset.
        exporter: ``legacy`` (TorchScript-based) or ``dynamo``.
        spec: the preprocessing spec to store (:func:`preprocessing_spec`; its ``height`` /
            ``width`` win over the arguments); None stores nothing.
        uint8_input: the graph takes uint8 RGB frames (B, T, H, W, 3) and normalises them with
            ``spec``'s mean / std (``spec`` required).

    Returns:
        a report: ``path``, ``inputs``, ``dynamic_frames`` (bool), ``why_fixed`` (None or the
        reason T is fixed), ``parity``: per checked (batch, frames) the relative L2 difference
        to PyTorch, ``max_rel_l2``, and ``metadata`` (the spec stored, without the config).

    Raises:
        ExportError: the exporter fails (its first line is given) or the fixed-T graph differs
            from PyTorch by more than 1e-4 (relative L2).
        WriteError: the file cannot be written (e.g. a full disk); names ``out``, which is left
            as it was.
    """
    if exporter not in ("legacy", "dynamo"):
        raise ExportError(f"exporter must be legacy or dynamo, got {exporter!r}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().to("cpu")
    if uint8_input and (spec is None or spec.get("mean") is None):
        raise ExportError("uint8_input needs the RGB mean / std of a preprocessing spec")
    if spec is not None:
        height, width = int(spec["height"]), int(spec["width"])
    wrapper = _EmbeddingOnly(model, flow, (spec["mean"], spec["std"]) if uint8_input else None).eval()
    t = int(seq_len)
    g = torch.Generator().manual_seed(0)
    args = (_example_clip(wrapper, 2, t, height, width, g),)
    names = ["clip"]
    if flow:
        args = args + (torch.randn(2, t, 2, height, width, generator=g),)
        names.append("flow")

    def run_export(dynamic_frames: bool, path: Path):
        axes = {n: ({0: "batch", 1: "frames"} if dynamic_frames else {0: "batch"}) for n in names}
        axes["embedding"] = {0: "batch"}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(wrapper, args, str(path), input_names=names, output_names=["embedding"],
                                  dynamic_axes=axes, opset_version=opset, dynamo=exporter == "dynamo")
            except OSError:
                raise  # a failed write (e.g. a full disk), not the model's fault: reported below with the user's path
            except Exception as e:
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise ExportError(f"{type(model).__name__} cannot be exported to ONNX ({exporter} exporter): "
                                  f"{type(e).__name__}: {first[:300]}") from None
        wrapper.eval()  # the exporter may restore training mode on the wrapper

    other_t = t + 3
    try:
        return _export_to(out, run_export, wrapper, names, t, other_t, height, width, flow, opset, exporter, model, spec)
    except OSError as e:
        raise WriteError(f"cannot write {out}: {e.strerror or e}; nothing was written there") from e


def _export_to(out, run_export, wrapper, names, t, other_t, height, width, flow, opset, exporter, model, spec) -> dict:
    why = None
    with atomic_path(out) as tmp:
        try:
            run_export(True, tmp)
            parity = _check(wrapper, tmp, [(2, t), (3, other_t)], height, width, flow)
        except ExportError as e:
            parity = [{"batch": 3, "frames": other_t, "rel_l2": float("inf"), "error": f"export: {e}"}]
        dynamic = all(p["rel_l2"] <= PARITY_TOL for p in parity)
        if not dynamic:
            bad = next(p for p in parity if p["rel_l2"] > PARITY_TOL)
            err = bad.get("error", "")
            if err.startswith("PyTorch:"):
                why = f"the model itself takes one clip length ({err[9:]}), so T is fixed at {t}"
            elif err.startswith("export:"):
                why = f"the exporter cannot make the clip length dynamic ({err[8:][:200]}), so T is fixed at {t}"
            else:
                why = (f"a graph exported with a dynamic clip length does not match PyTorch at T={bad['frames']} "
                       f"(relative L2 {bad['rel_l2']:.3g}{', ' + err if err else ''}): the model's computation over "
                       f"time is unrolled at export, so T is fixed at {t}")
            run_export(False, tmp)
            parity = _check(wrapper, tmp, [(2, t), (3, t)], height, width, flow)
            worst = max(p["rel_l2"] for p in parity)
            if worst > PARITY_TOL:
                raise ExportError(f"{type(model).__name__}: the ONNX graph differs from PyTorch by {worst:.3g} "
                                  f"(relative L2, tolerance {PARITY_TOL}); not written")
        meta = None
        if spec is not None:
            g = torch.Generator().manual_seed(0)
            ex = (_example_clip(wrapper, 1, t, height, width, g),) + ((torch.zeros(1, t, 2, height, width),) if flow else ())
            with torch.inference_mode():
                dim = int(wrapper(*ex).shape[1])
            meta = dict(spec, embedding_dim=dim,
                        input_frames="dynamic" if dynamic else t)
            _write_metadata(tmp, meta)
    tf = "frames" if dynamic else t
    shape = (lambda n: ["batch", tf, height, width, 3] if n == "clip" and wrapper.uint8
             else ["batch", tf, 3 if n == "clip" else 2, height, width])
    return {"path": str(out), "inputs": {n: shape(n) for n in names},
            "metadata": None if meta is None else {k: v for k, v in meta.items() if k != "config"},
            "output": {"embedding": ["batch", "D"]}, "dynamic_frames": dynamic, "why_fixed": why, "opset": opset,
            "exporter": exporter, "parity": parity, "max_rel_l2": max(p["rel_l2"] for p in parity)}


def _openvino_runner(path: Path):
    import openvino as ov

    # fp32 on the CPU plugin: on CPUs with bf16 units its default precision hint is bf16 (0.03 rel. L2)
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return lambda feeds: compiled(feeds)[compiled.output(0)]


def export_openvino(model: torch.nn.Module, out: str | Path, height: int, width: int, seq_len: int = 8,
                    flow: bool = False, opset: int = 17, exporter: str = "legacy", spec: dict | None = None,
                    uint8_input: bool = False) -> dict:
    """Export to OpenVINO IR (``out`` .xml and its .bin): the ONNX export of :func:`export_onnx`
    (same arguments, checked with ONNX Runtime), converted with ``openvino.convert_model``, the
    metadata stored as the model's ``rt_info`` under ``vidreid``, and checked again on OpenVINO's
    CPU plugin against PyTorch (relative L2 <= 1e-4).

    Returns:
        the ONNX report with ``path`` the .xml, ``bin`` the .bin, and ``openvino_parity``.

    Raises:
        ExportError: ``openvino`` is not installed, the conversion fails, or parity fails.
        WriteError: as :func:`export_onnx`.
    """
    try:
        import openvino as ov
    except ImportError:
        raise ExportError("--format openvino needs the openvino package (pip install openvino)") from None
    import os
    import tempfile

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmpdir:
        tmp = Path(tmpdir)
        rep = export_onnx(model, tmp / "model.onnx", height, width, seq_len, flow, opset, exporter, spec, uint8_input)
        try:
            ovm = ov.convert_model(str(tmp / "model.onnx"))
        except Exception as e:
            raise ExportError(f"OpenVINO cannot convert the ONNX graph: {(str(e).splitlines() or [''])[0][:300]}") from None
        if rep.get("metadata"):
            for k, v in rep["metadata"].items():
                ovm.set_rt_info(json.dumps(v), ["vidreid", k])
            ovm.set_rt_info(json.dumps(spec["config"]), ["vidreid", "config"])
        try:
            ov.save_model(ovm, str(tmp / "model.xml"), compress_to_fp16=False)
        except OSError as e:
            raise WriteError(f"cannot write {out}: {e.strerror or e}; nothing was written there") from e
        wrapper = _EmbeddingOnly(model.eval().to("cpu"), flow,
                                 (spec["mean"], spec["std"]) if uint8_input else None).eval()
        h, w = (int(spec["height"]), int(spec["width"])) if spec is not None else (height, width)
        t = int(seq_len)
        shapes = [(2, t), (3, t + 3)] if rep["dynamic_frames"] else [(2, t), (3, t)]
        parity = _check(wrapper, tmp / "model.xml", shapes, h, w, flow, seed=1, runner=_openvino_runner)
        worst = max(p["rel_l2"] for p in parity)
        if worst > PARITY_TOL:
            raise ExportError(f"{type(model).__name__}: the OpenVINO model differs from PyTorch by {worst:.3g} "
                              f"(relative L2, tolerance {PARITY_TOL}); not written")
        binp = out.with_suffix(".bin")
        os.replace(tmp / "model.bin", binp)  # the weights first, then the .xml that names them
        os.replace(tmp / "model.xml", out)
    return dict(rep, path=str(out), bin=str(binp), format="openvino", openvino_parity=parity,
                max_rel_l2=max(rep["max_rel_l2"], worst))


def read_openvino_metadata(path: str | Path) -> dict:
    """The preprocessing spec stored in an exported OpenVINO IR (``rt_info`` ``vidreid``)."""
    import openvino as ov

    m = ov.Core().read_model(str(path))
    if not m.has_rt_info(["vidreid"]):
        raise ExportError(f"{path}: no vidreid metadata")
    return {k: json.loads(m.get_rt_info(["vidreid", k]).astype(str)) for k in m.get_rt_info()["vidreid"]}
