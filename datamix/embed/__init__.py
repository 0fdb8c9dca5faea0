"""Embedding stage: text (sentence-transformers), precomputed vectors, images (torch)."""

from datamix.embed.base import EmbedShards, EncoderSpec, embed, embed_sources, get_encoder, resolve_device
from datamix.embed.image import ImageEncoder
from datamix.embed.text import TextEncoder, minilm_path
from datamix.embed.vectors import VectorEncoder

__all__ = ["embed", "embed_sources", "EmbedShards", "EncoderSpec", "get_encoder", "resolve_device", "TextEncoder", "VectorEncoder", "ImageEncoder",
           "minilm_path"]
