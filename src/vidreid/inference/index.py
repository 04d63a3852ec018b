"""A gallery index over embeddings for large galleries, on FAISS (``pip install faiss-cpu``).

* ``flat``: exact search (faiss ``IndexFlatL2`` / ``IndexFlatIP``): the same neighbours and
  distances as brute force (a test checks it against :func:`vidreid.rank`).
* ``ivf``: inverted lists (``IndexIVFFlat``): k-means into ``nlist`` cells, ``nprobe`` cells
  scanned per query. Approximate; recall@k against ``flat`` is what
  ``benchmarks/bench_index.py`` measures.
* ``hnsw``: a navigable small-world graph (``IndexHNSWFlat``, ``M`` links, ``ef_search``).

Metrics follow ``test.distance``: ``euclidean`` (FAISS's squared L2, returned as L2) and
``cosine`` (inner product of L2-normalised vectors, returned as 1 - cos). Embeddings are float32;
the index copies them.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

KINDS = ("flat", "ivf", "hnsw")


def _faiss():
    try:
        import faiss
    except ImportError as e:  # pragma: no cover - faiss-cpu is a declared dependency
        raise ConfigError("the gallery index needs FAISS: pip install faiss-cpu") from e
    return faiss


class GalleryIndex:
    """Nearest-gallery search.

    Args:
        dim: D, the embedding length.
        kind: ``flat`` (exact), ``ivf`` or ``hnsw`` (approximate).
        metric: ``euclidean`` or ``cosine``.
        nlist: IVF cells (default: about 4 sqrt(G), set at :meth:`add` when None).
        nprobe: IVF cells visited per query.
        m: HNSW links per node; ef_construction / ef_search: HNSW beam widths.
        threads: FAISS threads (None: its default, all cores).

    Raises:
        ConfigError: unknown kind or metric, or faiss missing.
    """

    def __init__(self, dim: int, kind: str = "flat", metric: str = "euclidean", nlist: int | None = None,
                 nprobe: int = 16, m: int = 32, ef_construction: int = 80, ef_search: int = 64,
                 threads: int | None = None):
        if kind not in KINDS:
            raise ConfigError(f"index kind must be one of {KINDS}, got {kind!r}")
        if metric not in ("euclidean", "cosine"):
            raise ConfigError(f"index metric must be euclidean or cosine, got {metric!r}")
        self.faiss = _faiss()
        if threads is not None:
            self.faiss.omp_set_num_threads(int(threads))
        self.dim, self.kind, self.metric = int(dim), kind, metric
        self.nlist, self.nprobe, self.m, self.ef_construction, self.ef_search = nlist, nprobe, m, ef_construction, ef_search
        self.index = None
        self.ntotal = 0

    def _prep(self, x) -> np.ndarray:
        a = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
        if a.ndim != 2 or a.shape[1] != self.dim:
            raise ValueError(f"expected embeddings (N, {self.dim}), got {a.shape}")
        if self.metric == "cosine":
            a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(a, dtype=np.float32)

    def _build(self, n: int, sample: np.ndarray):
        f = self.faiss
        ip = self.metric == "cosine"
        mt = f.METRIC_INNER_PRODUCT if ip else f.METRIC_L2
        if self.kind == "flat":
            return f.IndexFlatIP(self.dim) if ip else f.IndexFlatL2(self.dim)
        if self.kind == "hnsw":
            idx = f.IndexHNSWFlat(self.dim, self.m, mt)
            idx.hnsw.efConstruction = self.ef_construction
            idx.hnsw.efSearch = self.ef_search
            return idx
        nlist = self.nlist or max(1, min(int(4 * np.sqrt(n)), n // 39 or 1))
        self.nlist = nlist
        quant = f.IndexFlatIP(self.dim) if ip else f.IndexFlatL2(self.dim)
        idx = f.IndexIVFFlat(quant, self.dim, nlist, mt)
        idx.train(sample)
        idx.nprobe = min(self.nprobe, nlist)
        self._quantizer = quant  # the IVF index does not own its quantizer: keep it alive
        return idx

    def add(self, gallery, train_size: int = 256 * 1024, seed: int = 0) -> "GalleryIndex":
        """Add gallery embeddings (G, D) (ids continue from the previous add). The first add of an
        ``ivf`` index trains its k-means on up to ``train_size`` of them (drawn with ``seed``)."""
        g = self._prep(gallery)
        if self.index is None:
            rng = np.random.default_rng(seed)
            sample = g if len(g) <= train_size else g[np.sort(rng.choice(len(g), train_size, replace=False))]
            self.index = self._build(len(g), sample)
        self.index.add(g)
        self.ntotal = int(self.index.ntotal)
        return self

    def search(self, query, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest gallery items of each query.

        Returns:
            ``(indices, distances)``: int64 (Q, k) gallery ids in add order, nearest first (-1
            where fewer than k were found), and float32 (Q, k) distances in the index's metric.
        Raises:
            RuntimeError: the index is empty.
        """
        if self.index is None:
            raise RuntimeError("search before add: the index is empty")
        q = self._prep(query)
        k = min(int(k), self.ntotal)
        d, i = self.index.search(q, k)
        if self.metric == "cosine":
            d = 1.0 - d
        else:
            d = np.sqrt(np.maximum(d, 0.0))
        return i.astype(np.int64), d.astype(np.float32)
