"""Feature extraction usable on its own."""

from .features import extract_features

__all__ = ["extract_features"]
