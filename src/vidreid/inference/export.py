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
"""

from __future__ import annotations

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
    def __init__(self, model: torch.nn.Module, flow: bool):
        super().__init__()
        self.model, self.flow = model, flow

    def forward(self, clip, flow=None):
        return self.model(clip, flow=flow).embedding if self.flow else self.model(clip).embedding


def _rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))


def _check(wrapper, path: Path, shapes: list[tuple[int, int]], height: int, width: int, flow: bool, seed: int = 0) -> list[dict]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(seed)
    out = []
    for b, t in shapes:
        x = torch.randn(b, t, 3, height, width, generator=g)
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
            got = sess.run(None, feeds)[0]
            err = _rel_l2(got, ref) if got.shape == ref.shape else float("inf")
        except Exception as e:  # onnxruntime raises its own types for shape mismatches
            err = float("inf")
            out.append({"batch": b, "frames": t, "rel_l2": err, "error": str(e).splitlines()[0][:200]})
            continue
        out.append({"batch": b, "frames": t, "rel_l2": err})
    return out


def export_onnx(model: torch.nn.Module, out: str | Path, height: int, width: int, seq_len: int = 8,
                flow: bool = False, opset: int = 17, exporter: str = "legacy") -> dict:
    """Export ``model`` (eval mode, on the CPU) to ``out`` and check it with ONNX Runtime.

    Args:
        model: a vidreid model.
        out: the ``.onnx`` path (written atomically).
        height, width: the input size (the config's ``data.height`` / ``data.width``).
        seq_len: T of the example clip (and of the graph when T cannot be dynamic).
        flow: the model takes optical flow (a second input ``flow``).
        opset: ONNX opset.
        exporter: ``legacy`` (TorchScript-based) or ``dynamo``.

    Returns:
        a report: ``path``, ``inputs``, ``dynamic_frames`` (bool), ``why_fixed`` (None or the
        reason T is fixed), ``parity``: per checked (batch, frames) the relative L2 difference
        to PyTorch, and ``max_rel_l2``.

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
    wrapper = _EmbeddingOnly(model, flow).eval()
    t = int(seq_len)
    g = torch.Generator().manual_seed(0)
    args = (torch.randn(2, t, 3, height, width, generator=g),)
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
        return _export_to(out, run_export, wrapper, names, t, other_t, height, width, flow, opset, exporter, model)
    except OSError as e:
        raise WriteError(f"cannot write {out}: {e.strerror or e}; nothing was written there") from e


def _export_to(out, run_export, wrapper, names, t, other_t, height, width, flow, opset, exporter, model) -> dict:
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
    return {"path": str(out), "inputs": {n: ["batch", "frames" if dynamic else t, 3 if n == "clip" else 2, height, width]
                                         for n in names},
            "output": {"embedding": ["batch", "D"]}, "dynamic_frames": dynamic, "why_fixed": why, "opset": opset,
            "exporter": exporter, "parity": parity, "max_rel_l2": max(p["rel_l2"] for p in parity)}
