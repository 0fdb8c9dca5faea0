import json

import numpy as np
import pandas as pd
import pytest

from datamix.data import Source, sample_mixture
from datamix.data.sources import allocate

ROWS = [{"uid": f"u{i}", "text": f"sample text number {i}", "label": i % 3} for i in range(7)]


def write_format(tmp_path, fmt):
    df = pd.DataFrame(ROWS)
    if fmt == "jsonl":
        p = tmp_path / "d.jsonl"
        p.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    elif fmt == "json":
        p = tmp_path / "d.json"
        p.write_text(json.dumps(ROWS))
    elif fmt == "csv":
        p = tmp_path / "d.csv"
        df.to_csv(p, index=False)
    elif fmt == "parquet":
        p = tmp_path / "d.parquet"
        df.to_parquet(p)
    else:
        import datasets

        p = tmp_path / "d_arrow"
        datasets.Dataset.from_pandas(df).save_to_disk(str(p))
    return p


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "parquet", "arrow"])
def test_read_each_local_format(tmp_path, fmt):
    p = write_format(tmp_path, fmt)
    s = Source.from_files("web", p, field="text", label_field="label", id_field="uid", cache_dir=tmp_path / "c")
    assert len(s) == 7
    assert s.samples() == [r["text"] for r in ROWS]
    np.testing.assert_array_equal(s.labels, [r["label"] for r in ROWS])
    np.testing.assert_array_equal(s.ids, [r["uid"] for r in ROWS])
    assert not s.revealed and s.total_size == 7


def test_arrow_file_and_default_ids(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"text": ["a", "b"]}).save_to_disk(str(tmp_path / "ds"))
    arrow_file = next((tmp_path / "ds").glob("*.arrow"))
    s = Source.from_files("pool", arrow_file, field="text")
    np.testing.assert_array_equal(s.ids, ["pool:0", "pool:1"])


def test_revealed_sample_of_an_offer():
    s = Source.from_arrays("offer", ["a", "b", "c"], price=0.5, offer_size=300)
    assert s.revealed and s.total_size == 300 and s.price == 0.5
    with pytest.raises(ValueError, match="offer_size=2"):
        Source.from_arrays("offer", ["a", "b", "c"], offer_size=2)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        Source.from_files("web", tmp_path / "nope.jsonl", field="text")


def test_missing_field_names_field_and_columns(tmp_path):
    p = write_format(tmp_path, "jsonl")
    with pytest.raises(ValueError, match=r"field 'content' is not a column; columns are \['uid', 'text', 'label'\]"):
        Source.from_files("web", p, field="content", cache_dir=tmp_path / "c")
    with pytest.raises(ValueError, match="label_field 'y'"):
        Source.from_files("web", p, field="text", label_field="y", cache_dir=tmp_path / "c")


def test_empty_source_is_an_error(tmp_path):
    p = tmp_path / "empty.parquet"
    pd.DataFrame({"text": pd.Series([], dtype=str)}).to_parquet(p)
    with pytest.raises(ValueError, match="empty"):
        Source.from_files("web", p, field="text")


def test_non_utf8_text_names_line_and_byte(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_bytes(b'{"text": "fine"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl: not valid UTF-8 at line 2 \(byte 30\)"):
        Source.from_files("web", p, field="text")


def test_unknown_extension_and_mixed_formats(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(ValueError, match="cannot tell the format"):
        Source.from_files("web", tmp_path / "a.txt", field="text")
    a, b = write_format(tmp_path, "csv"), write_format(tmp_path, "parquet")
    with pytest.raises(ValueError, match="several formats"):
        Source.from_files("web", [a, b], field="text")


def test_mixed_vector_dimensions_name_the_row(tmp_path):
    p = tmp_path / "v.jsonl"
    p.write_text('{"v": [1, 2, 3]}\n{"v": [1, 2, 3]}\n{"v": [1, 2]}\n')
    s = Source.from_files("vec", p, field="v", kind="vector", cache_dir=tmp_path / "c")
    with pytest.raises(ValueError, match="row 2 has 2 values, expected 3"):
        s.vectors()


def test_nan_vectors_name_the_rows():
    X = np.ones((5, 2))
    X[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"rows \[3\] hold NaN or inf"):
        Source.from_arrays("vec", X).vectors()


def test_bad_names_and_duplicate_ids():
    with pytest.raises(ValueError, match="invalid source name '../x'"):
        Source.from_arrays("../x", ["a"])
    with pytest.raises(ValueError, match="duplicate ids"):
        Source.from_arrays("s", ["a", "b"], ids=[1, 1])


def test_allocate_sums_exactly_and_is_proportional():
    counts = allocate(np.array([1 / 3, 1 / 3, 1 / 3]), 100)
    assert counts.sum() == 100 and counts.max() - counts.min() <= 1
    np.testing.assert_array_equal(allocate(np.array([0.25, 0.75]), 8), [2, 6])


def pools():
    return [Source.from_arrays("a", [f"a{i}" for i in range(10)]),
            Source.from_arrays("b", [f"b{i}" for i in range(40)])]


def test_mixture_sampling_is_deterministic_and_nested():
    src = pools()
    m1 = sample_mixture(src, [0.5, 0.5], 30, seed=3)
    m2 = sample_mixture(src, [0.5, 0.5], 30, seed=3)
    np.testing.assert_array_equal(m1.index, m2.index)
    np.testing.assert_array_equal(m1.source, m2.source)
    assert m1.counts == {"a": 15, "b": 15} and len(m1) == 30
    other = sample_mixture(src, [0.5, 0.5], 30, seed=4)
    assert not np.array_equal(m1.index, other.index)
    small = sample_mixture(src, [0.5, 0.5], 10, seed=3)
    for j in (0, 1):  # a smaller draw is a prefix of a larger one, per source
        np.testing.assert_array_equal(small.index[small.source == j], m1.index[m1.source == j][:5])


def test_adding_a_source_leaves_the_others_draws_unchanged():
    a, b = pools()
    c = Source.from_arrays("c", [f"c{i}" for i in range(5)])
    m1 = sample_mixture([a, b], [0.5, 0.5], 20, seed=0)
    m2 = sample_mixture([a, b, c], [0.25, 0.5, 0.25], 40, seed=0)
    np.testing.assert_array_equal(m1.index[m1.source == 1], m2.index[m2.source == 1][:10])


def test_oversampling_repeats_whole_passes():
    m = sample_mixture(pools(), [0.8, 0.2], 30, seed=0)  # 24 rows from a source of 10
    reps = np.bincount(m.index[m.source == 0], minlength=10)
    assert reps.sum() == 24 and set(reps) == {2, 3}


@pytest.mark.parametrize("ratios,match", [([0.5, 0.6], "sum to 1"), ([1.0], "one per source"),
                                          ([1.5, -0.5], ">= 0"), ([np.nan, 1], "finite")])
def test_bad_ratios(ratios, match):
    with pytest.raises(ValueError, match=match):
        sample_mixture(pools(), ratios, 10)


def test_bad_size():
    with pytest.raises(ValueError, match="size=0"):
        sample_mixture(pools(), [0.5, 0.5], 0)


def test_from_hub_reads_a_local_dataset_folder(tmp_path):
    """``from_hub`` goes through ``datasets.load_dataset``; a folder of data files needs no network."""
    folder = tmp_path / "hubdata"
    folder.mkdir()
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    s = Source.from_hub("hub", str(folder), field="text", label_field="label", id_field="uid")
    assert s.origin == f"hub:{folder}[train]" and len(s) == 7
    np.testing.assert_array_equal(s.ids, [r["uid"] for r in ROWS])
