"""Precomputed vectors pass through the embed stage unchanged (checked, as float32)."""

from __future__ import annotations

import numpy as np


class VectorEncoder:
    """Identity encoder for sources whose samples already are vectors."""

    name = "identity"

    def encode(self, batch: np.ndarray) -> np.ndarray:
        """Return ``batch`` as a float32 array of shape (m, d)."""
        X = np.asarray(batch, dtype=np.float32)
        if X.ndim != 2:
            raise ValueError(f"vector batch has shape {X.shape}, expected (n_samples, n_features)")
        return X
