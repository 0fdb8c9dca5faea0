"""Image embedding through a pluggable torch encoder (default: raw pixels, flattened)."""

from __future__ import annotations

import numpy as np


class ImageEncoder:
    """Turn images into vectors with a torch module.

    Images (PIL images or arrays of shape (H, W) or (H, W, C); integer pixels are divided by 255)
    become floats of shape
    (C, H, W) and stacked; they must share one size. ``module`` maps a batch (m, C, H, W) to
    features (m, ...), flattened to (m, dim). With ``module=None`` the pixels themselves are the
    embedding.

    Parameters
    ----------
    module : torch.nn.Module or None
    device : str, default="auto"
    batch_size : int, optional
        Default 256.
    name : str, optional
        Name kept in the store's manifest; default the module's class name.
    """

    def __init__(self, module=None, *, device: str = "auto", batch_size: int | None = None,
                 name: str | None = None):
        from datamix.embed.base import resolve_device

        self.device = resolve_device(device)
        self.module = None if module is None else module.to(self.device).eval()
        self.batch_size = int(batch_size or 256)
        self.name = name or ("pixels" if module is None else type(module).__name__)

    def encode(self, images: list) -> np.ndarray:
        """Embed ``images`` into float32 of shape (len(images), dim)."""
        import torch

        arrays = [np.asarray(im) for im in images]
        shapes = {a.shape for a in arrays}
        if len(shapes) > 1:
            raise ValueError(f"images of several sizes {sorted(shapes)[:3]}; resize them to one size first")
        X = np.stack(arrays).astype(np.float32)
        if np.issubdtype(arrays[0].dtype, np.integer):  # 8-bit pixels
            X /= 255.0
        X = X[:, None] if X.ndim == 3 else X.transpose(0, 3, 1, 2)
        if self.module is None:
            return X.reshape(len(X), -1)
        out = []
        with torch.inference_mode():
            for i in range(0, len(X), self.batch_size):
                batch = torch.from_numpy(X[i:i + self.batch_size]).to(self.device)
                out.append(self.module(batch).reshape(len(batch), -1).float().cpu().numpy())
        return np.concatenate(out).astype(np.float32)
