"""Inference outside the training loop: feature extraction, tracklets from video and tracks,
matching and assignment, a FAISS gallery index, ONNX export."""

from .features import extract_features

__all__ = ["extract_features"]
