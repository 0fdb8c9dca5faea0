"""Exact kNN against a brute-force numpy oracle."""

import numpy as np
import pytest

from datamix.index import faiss_gpu_count, knn


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(200, 5)).astype(np.float32), rng.normal(size=(30, 5)).astype(np.float32)


def test_l2_queries_match_numpy(data):
    X, Q = data
    D, I = knn(X, 4, queries=Q, metric="l2")
    full = ((Q[:, None, :] - X[None]) ** 2).sum(-1)
    ref = np.argsort(full, axis=1)[:, :4]
    np.testing.assert_array_equal(I, ref)
    np.testing.assert_allclose(D, np.take_along_axis(full, ref, axis=1), rtol=1e-4, atol=1e-5)


def test_cosine_self_search_excludes_self(data):
    X, _ = data
    D, I = knn(X, 3, metric="cosine")
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    S = Xn @ Xn.T
    np.fill_diagonal(S, -np.inf)
    ref = np.argsort(-S, axis=1)[:, :3]
    np.testing.assert_array_equal(I, ref)
    np.testing.assert_allclose(D, 1 - np.take_along_axis(S, ref, axis=1), atol=1e-5)
    assert not (I == np.arange(len(X))[:, None]).any()


def test_exact_duplicates_drop_own_index_not_the_twin():
    X = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    D, I = knn(X, 1, metric="ip")
    np.testing.assert_array_equal(I[:2].ravel(), [1, 0])  # row 2 ties between 0 and 1
    np.testing.assert_allclose(D.ravel(), [1.0, 1.0, 0.0])


@pytest.mark.gpu
@pytest.mark.skipif(faiss_gpu_count() == 0, reason="faiss sees no GPU")
def test_gpu_matches_cpu(data):
    X, Q = data
    np.testing.assert_array_equal(knn(X, 5, queries=Q, device="cuda")[1],
                                  knn(X, 5, queries=Q, device="cpu")[1])
