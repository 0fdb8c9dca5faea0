"""faiss helpers: device choice, spherical k-means and exact kNN (GPU when present, CPU otherwise)."""

from datamix.index._checks import check_embeddings, l2_normalize
from datamix.index.device import faiss_gpu_count, resolve_device
from datamix.index.kmeans import KMeansResult, assign, spherical_kmeans
from datamix.index.neighbors import knn

__all__ = [
    "KMeansResult",
    "assign",
    "check_embeddings",
    "faiss_gpu_count",
    "knn",
    "l2_normalize",
    "resolve_device",
    "spherical_kmeans",
]
