"""faiss helpers: device choice, spherical k-means (in memory or streamed from embedding stores) and exact kNN
(GPU when present, CPU otherwise)."""

from datamix.index._checks import check_embeddings, l2_normalize
from datamix.index.device import faiss_gpu_count, resolve_device
from datamix.index.kmeans import KMeansResult, assign, spherical_kmeans
from datamix.index.neighbors import knn
from datamix.index.streaming import AssignShards, kmeans_on_stores

__all__ = [
    "AssignShards",
    "KMeansResult",
    "assign",
    "check_embeddings",
    "faiss_gpu_count",
    "kmeans_on_stores",
    "knn",
    "l2_normalize",
    "resolve_device",
    "spherical_kmeans",
]
