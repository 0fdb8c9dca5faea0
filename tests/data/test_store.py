import json

import numpy as np
import pytest

from datamix.data import EmbeddingStore, Source, StoreError
from datamix.data.store import MANIFEST, StoreWriter
from datamix.embed import embed


def vector_source(n=25, d=4, seed=0):
    X = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return Source.from_arrays("vec", X), X


def test_round_trip_memory_mapped(tmp_path):
    src, X = vector_source()
    store = embed(src, store=tmp_path / "s", shard_size=10, progress=False)
    assert (len(store), store.dim, store.complete, len(store.shards)) == (25, 4, True, 3)
    np.testing.assert_array_equal(store.load(), X)
    np.testing.assert_array_equal(store.ids, src.ids)
    assert isinstance(store.shard(0), np.memmap)
    batches = list(store.iter_batches(batch_size=4))
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), X)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), src.ids)
    store.verify()
    reopened = EmbeddingStore.open(tmp_path / "s")
    np.testing.assert_array_equal(reopened.load(), X)


def test_truncated_shard_is_reported_then_repaired(tmp_path):
    src, X = vector_source()
    embed(src, store=tmp_path / "s", shard_size=10, progress=False)
    shard = tmp_path / "s" / "shard-000001.npy"
    shard.write_bytes(shard.read_bytes()[:-17])
    with pytest.raises(StoreError, match="shard-000001.npy: shard missing, truncated or corrupt"):
        EmbeddingStore(tmp_path / "s")
    store = embed(src, store=tmp_path / "s", shard_size=10, progress=False)
    np.testing.assert_array_equal(store.load(), X)
    np.testing.assert_array_equal(store.ids, src.ids)


def test_changed_shard_fails_verify_and_is_recomputed(tmp_path):
    src, X = vector_source()
    embed(src, store=tmp_path / "s", shard_size=10, progress=False)
    shard = tmp_path / "s" / "shard-000000.npy"
    raw = bytearray(shard.read_bytes())
    raw[-1] ^= 0xFF  # same size, different content
    shard.write_bytes(bytes(raw))
    with pytest.raises(StoreError, match="shard-000000.npy: checksum mismatch"):
        EmbeddingStore(tmp_path / "s").verify()
    store = embed(src, store=tmp_path / "s", shard_size=10, progress=False)
    store.verify()
    np.testing.assert_array_equal(store.load(), X)


def test_shard_written_but_not_listed_is_redone_once(tmp_path):
    """A kill between a shard's write and the manifest update: the shard is redone, not doubled."""
    src, X = vector_source()
    embed(src, store=tmp_path / "s", shard_size=10, progress=False)
    m = json.loads((tmp_path / "s" / MANIFEST).read_text())
    m["shards"] = m["shards"][:-1]
    (tmp_path / "s" / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(StoreError, match="incomplete store \\(20 of 25"):
        EmbeddingStore(tmp_path / "s")
    assert len(EmbeddingStore(tmp_path / "s", allow_partial=True)) == 20
    store = embed(src, store=tmp_path / "s", shard_size=10, progress=False)
    assert len(store) == 25 and len(np.unique(store.ids)) == 25
    np.testing.assert_array_equal(store.load(), X)


def test_changed_input_rows_are_re_embedded(tmp_path):
    src, X = vector_source()
    embed(src, store=tmp_path / "s", shard_size=10, progress=False)
    X2 = X.copy()
    X2[12] += 1
    store = embed(Source.from_arrays("vec", X2), store=tmp_path / "s", shard_size=10, progress=False)
    np.testing.assert_array_equal(store.load(), X2)


def test_incompatible_store_is_not_resumed(tmp_path):
    src, _ = vector_source()
    embed(src, store=tmp_path / "s", shard_size=10, progress=False)
    with pytest.raises(StoreError, match=r"shard_size\) = \('identity', 25, 10\), but this run asks for \('identity', 25, 5\)"):
        embed(src, store=tmp_path / "s", shard_size=5, progress=False)
    store = embed(src, store=tmp_path / "s", shard_size=5, overwrite=True, progress=False)
    assert len(store.shards) == 5


def test_damaged_manifest_and_foreign_folder(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / MANIFEST).write_text("{not json")
    with pytest.raises(StoreError, match="damaged manifest"):
        EmbeddingStore(tmp_path / "s")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not empty and holds no manifest.json"):
        StoreWriter(tmp_path / "other", model="m", n_total=3, shard_size=2)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_writer_rejects_shards_of_the_wrong_shape(tmp_path):
    w = StoreWriter(tmp_path / "s", model="m", n_total=5, shard_size=3)
    with pytest.raises(ValueError, match="rows 0:3"):
        w.write(0, np.array(["a", "b"]), np.zeros((2, 4)), "h")
    w.write(0, np.array(["a", "b", "c"]), np.zeros((3, 4)), "h")
    with pytest.raises(ValueError, match="dimension 5, the store holds 4"):
        w.write(1, np.array(["d", "e"]), np.zeros((2, 5)), "h")


def test_shard_files_a_killed_worker_left_unlisted_are_rewritten_not_doubled(tmp_path):
    """A worker writes a shard's files and dies before the driver lists them: the next run writes
    them again in place; each id once."""
    from datamix.data.store import write_shard

    src, X = vector_source()
    w = StoreWriter(tmp_path / "s", model="identity", n_total=25, shard_size=10)
    w.register(write_shard(tmp_path / "s", 0, 0, 10, src.ids_between(0, 10), X[:10], "h0"), 4)
    write_shard(tmp_path / "s", 1, 10, 20, src.ids_between(10, 20), X[10:20] + 7, "stale")  # never listed
    (tmp_path / "s" / ".shard-000002.npy.abc.tmp").write_bytes(b"half a shard")  # a write cut short
    assert len(EmbeddingStore(tmp_path / "s", allow_partial=True)) == 10
    store = embed(src, store=tmp_path / "s", shard_size=10, progress=False)
    np.testing.assert_array_equal(store.ids, src.ids)
    np.testing.assert_array_equal(store.load(), X)
    assert not list((tmp_path / "s").glob(".*.tmp"))


def test_register_checks_bounds_dimension_and_files(tmp_path):
    from datamix.data.store import ShardRecord, write_shard

    w = StoreWriter(tmp_path / "s", model="m", n_total=5, shard_size=3)
    rec = write_shard(tmp_path / "s", 0, 0, 3, np.array(["a", "b", "c"]), np.zeros((3, 4)), "h")
    with pytest.raises(ValueError, match=r"rows 0:2, this store's shard 0 holds rows \(0, 3\)"):
        w.register(ShardRecord(0, 0, 2, rec.sha256, "h"), 4)
    with pytest.raises(StoreError, match=r"shard 1 was reported written but \['shard-000001.npy'"):
        w.register(ShardRecord(1, 3, 5, rec.sha256, "h"), 4)
    w.register(rec, 4)
    with pytest.raises(ValueError, match="dimension 5, the store holds 4"):
        w.register(write_shard(tmp_path / "s", 1, 3, 5, np.array(["d", "e"]), np.zeros((2, 5)), "h"), 5)
