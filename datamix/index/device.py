"""Where faiss and torch run: the GPU when one is present, the CPU otherwise, behind one API."""

from __future__ import annotations

import functools
import logging

import faiss

__all__ = ["faiss_gpu_count", "resolve_device"]

logger = logging.getLogger(__name__)

_DEVICES = ("auto", "cpu", "cuda")


@functools.lru_cache(maxsize=1)
def faiss_gpu_count() -> int:
    """Number of GPUs the installed faiss build can use (0 for the ``faiss-cpu`` wheel)."""
    get = getattr(faiss, "get_num_gpus", None)
    try:
        return int(get()) if get is not None else 0
    except RuntimeError:  # a GPU build on a machine without a driver
        return 0


def resolve_device(device: str = "auto") -> str:
    """Resolve a device name for faiss.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"}, default="auto"
        ``"auto"`` picks ``"cuda"`` when the faiss build sees a GPU, else ``"cpu"``.

    Returns
    -------
    device : {"cpu", "cuda"}

    Raises
    ------
    ValueError
        For an unknown name, or ``"cuda"`` when faiss sees no GPU.
    """
    if device not in _DEVICES:
        raise ValueError(f"device must be one of {_DEVICES}, got {device!r}")
    n_gpu = faiss_gpu_count()
    if device == "cuda" and n_gpu == 0:
        raise ValueError(
            "device='cuda' but faiss sees no GPU; install the GPU build "
            "(pip install 'datamix[gpu]') or pass device='auto'"
        )
    resolved = "cuda" if device == "cuda" or (device == "auto" and n_gpu > 0) else "cpu"
    logger.debug("faiss device: %s (GPUs visible to faiss: %d)", resolved, n_gpu)
    return resolved
