"""vidreid: video-based person re-identification.

Tracklets (ordered person crops from one camera) in, embeddings and rankings out. See the
README for the command line and ``docs/`` for datasets and results.
"""

__version__ = "0.1.0"
