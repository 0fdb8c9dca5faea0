"""Sources of samples, the embedding store, and the bundled demo scenarios."""

from datamix.data.sources import MixtureSample, Source, sample_mixture
from datamix.data.store import EmbeddingStore, StoreError

__all__ = ["Source", "MixtureSample", "sample_mixture", "EmbeddingStore", "StoreError"]
