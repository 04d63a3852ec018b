"""The data layer: dataset trees -> Tracklet records + protocol -> clips -> batches."""

from .tracklet import ReIDSplit, Tracklet

__all__ = ["ReIDSplit", "Tracklet"]
