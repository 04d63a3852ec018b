"""vidreid: video-based person re-identification.

Tracklets (ordered person crops from one camera) in, embeddings and rankings out. See the
README for the command line and ``docs/`` for datasets and results.

The Python API (:mod:`vidreid.api`)::

    import vidreid
    model = vidreid.load("runs/x/checkpoint.pt")         # a ReIDModel
    emb = model.embed(["cam1/000007", "cam2/000012"])    # float32 (N, D)
    order, dist = vidreid.rank(emb[:1], emb[1:], metric=model.metric)

``import vidreid`` is cheap: torch and the models are imported when an API name is first used
(so ``vidreid --help`` and ``vidreid --version`` start at once).
"""

__version__ = "0.3.0"

__all__ = ["ReIDModel", "load", "distance", "rank", "__version__"]


def __getattr__(name: str):
    if name in ("ReIDModel", "load", "distance", "rank"):
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'vidreid' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + ["ReIDModel", "load", "distance", "rank"])
