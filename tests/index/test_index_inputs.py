"""Bad input to the index layer gives clear ValueErrors."""

import numpy as np
import pytest

from datamix.index import check_embeddings, knn, l2_normalize, spherical_kmeans


def test_nan_and_inf_rows_are_named():
    X = np.ones((10, 3), dtype=np.float32)
    X[4, 1] = np.nan
    X[7, 0] = np.inf
    with pytest.raises(ValueError, match=r"NaN or inf in 2 rows, first: \[4, 7\]"):
        check_embeddings(X)


def test_huge_finite_rows_are_accepted():
    # The cheap row-sum check overflows here; the exact check must clear the rows.
    X = np.full((3, 4), 3e38, dtype=np.float32)
    np.testing.assert_array_equal(check_embeddings(X), X)
    np.testing.assert_allclose(np.linalg.norm(l2_normalize(X), axis=1), 1.0, rtol=1e-6)


def test_zero_vectors_are_named():
    X = np.eye(5, dtype=np.float32)
    X[2] = 0
    with pytest.raises(ValueError, match=r"zero vectors in 1 row, first: \[2\]"):
        spherical_kmeans(X, 2)


@pytest.mark.parametrize("shape", [(5,), (0, 3), (3, 0), (2, 3, 4)])
def test_bad_shapes(shape):
    with pytest.raises(ValueError, match="emb must"):
        check_embeddings(np.ones(shape))


def test_n_clusters_larger_than_n():
    with pytest.raises(ValueError, match=r"n_clusters=6 is larger than the number of samples \(5\)"):
        spherical_kmeans(np.eye(5), 6)


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_n_clusters_not_a_positive_int(bad):
    with pytest.raises(ValueError, match="n_clusters must be an int >= 1"):
        spherical_kmeans(np.eye(5), bad)


def test_knn_bad_k_and_metric():
    X = np.eye(4)
    with pytest.raises(ValueError, match=r"k must be an int >= 1, <= 3"):
        knn(X, 4)
    with pytest.raises(ValueError, match="metric must be one of"):
        knn(X, 1, metric="manhattan")


def test_unknown_device():
    with pytest.raises(ValueError, match="device must be one of"):
        spherical_kmeans(np.eye(4), 2, device="tpu")
