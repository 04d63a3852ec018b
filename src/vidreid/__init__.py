"""vidreid: video-based person re-identification.

Tracklets (ordered person crops from one camera) in, embeddings and rankings out. See the
README for the command line and ``docs/`` for datasets and results.

The Python API (:mod:`vidreid.api`)::

    import vidreid
    model = vidreid.load("runs/x/checkpoint.pt")         # a ReIDModel
    emb = model.embed(["cam1/000007", "cam2/000012"])    # float32 (N, D)
    order, dist = vidreid.rank(emb[:1], emb[1:], metric=model.metric)
"""

__version__ = "0.2.0"

from .api import ReIDModel, distance, load, rank  # noqa: E402

__all__ = ["ReIDModel", "load", "distance", "rank", "__version__"]
