import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from datamix.data import Source
from datamix.data.store import MANIFEST
from datamix.embed import ImageEncoder, embed, get_encoder


def texts(n):
    topics = ["rivers", "compilers", "bread", "tides", "chess", "violins", "glaciers"]
    return [f"Note {i}: a short remark about {topics[i % 7]} and item {i * 7919 % 1000}." for i in range(n)]


def test_text_embeddings_equal_sentence_transformers(minilm, tmp_path):
    docs = texts(40)
    store = embed(Source.from_arrays("t", docs), minilm, store=tmp_path / "s", shard_size=16, progress=False)
    direct = minilm.model.encode(docs, batch_size=64, convert_to_numpy=True)
    assert store.dim == 384 and store.model == "sentence-transformers/all-MiniLM-L6-v2"
    np.testing.assert_allclose(store.load(), direct, atol=1e-5)


def test_text_field_with_missing_or_non_text_rows_is_refused_on_construction():
    import datasets

    with pytest.raises(ValueError, match=r"source 't' \(arrays\): field 'text' is missing \(null\) in 1 of 3 rows"):
        Source(name="t", dataset=datasets.Dataset.from_dict({"text": ["fine", None, "ok"]}), field="text")
    with pytest.raises(ValueError, match=r"field 'text' holds int64, not text"):
        Source(name="t", dataset=datasets.Dataset.from_dict({"text": [1, 2]}), field="text")


def test_vectors_pass_through_and_reject_models(tmp_path):
    X = np.arange(12, dtype=np.float64).reshape(4, 3)
    store = embed(Source.from_arrays("v", X), store=tmp_path / "s", progress=False)
    np.testing.assert_array_equal(store.load(), X.astype(np.float32))
    with pytest.raises(ValueError, match="vectors pass through"):
        get_encoder("minilm", kind="vector")


def test_images_through_a_torch_module(tmp_path):
    import torch

    images = [np.full((4, 4), v, dtype=np.uint8) for v in (0, 51, 255)]
    pixels = ImageEncoder().encode(images)
    np.testing.assert_allclose(pixels[:, 0], [0, 0.2, 1], rtol=1e-6)
    pool = ImageEncoder(torch.nn.AdaptiveAvgPool2d(1), name="avgpool").encode(images)
    np.testing.assert_allclose(pool[:, 0], [0, 0.2, 1], rtol=1e-6)
    with pytest.raises(ValueError, match="several sizes"):
        ImageEncoder().encode([np.zeros((4, 4)), np.zeros((5, 5))])


SLOW_EMBED = """
import sys, time
from datamix.data import Source
from datamix.embed import embed, TextEncoder

class Slow:  # the real model, slowed down so that the test can kill it mid-run
    def __init__(self):
        self.inner = TextEncoder("minilm", device="cpu")
        self.name = self.inner.name
    def encode(self, batch):
        time.sleep(0.3)
        return self.inner.encode(batch)

src = Source.from_files("docs", sys.argv[1], field="text")
embed(src, Slow(), store=sys.argv[2], shard_size=20, progress=False)
"""


def test_resume_after_kill_keeps_one_embedding_per_id(minilm, tmp_path):
    docs = texts(300)
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in docs))
    store_dir = tmp_path / "store"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-c", SLOW_EMBED, str(data), str(store_dir)], env=env)
    deadline = time.time() + 120
    try:
        while time.time() < deadline:  # wait until some, not all, of the 15 shards are done
            manifest = store_dir / MANIFEST
            if manifest.exists() and len(json.loads(manifest.read_text())["shards"]) >= 3:
                break
            assert proc.poll() is None, "the embedding process ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("no shard was written within 120 s")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done_before = len(json.loads((store_dir / MANIFEST).read_text())["shards"])
    assert 3 <= done_before < 15
    first = (store_dir / "shard-000000.npy").stat().st_mtime_ns

    src = Source.from_files("docs", data, field="text")
    store = embed(src, minilm, store=store_dir, shard_size=20, progress=False)
    assert (store_dir / "shard-000000.npy").stat().st_mtime_ns == first  # finished shards were kept
    np.testing.assert_array_equal(store.ids, src.ids)  # every id exactly once, in order
    assert len(np.unique(store.ids)) == 300 and len(store) == 300
    direct = minilm.model.encode(docs, batch_size=64, convert_to_numpy=True)
    np.testing.assert_allclose(store.load(), direct, atol=1e-5)
    assert sorted(p.name for p in store_dir.iterdir() if p.name.startswith(".")) == []  # no temp files left
