"""Inference on a user's data: feature extraction, video + tracks to tracklets, matching, the
gallery index and export. Submodules are imported when used (``vidreid.inference.tracks`` needs
no torch)."""

__all__ = ["extract_features"]


def __getattr__(name: str):
    if name == "extract_features":
        from .features import extract_features

        return extract_features
    raise AttributeError(f"module 'vidreid.inference' has no attribute {name!r}")
