"""Spherical k-means on faiss: known answers, the explicit training sample, determinism."""

import logging

import numpy as np
import pytest

from datamix.index import assign, faiss_gpu_count, spherical_kmeans


def four_points():
    # Two pairs of unit vectors 0.1 rad apart, one near each axis.
    angles = np.array([0.0, 0.1, np.pi / 2, np.pi / 2 - 0.1])
    return np.c_[np.cos(angles), np.sin(angles)].astype(np.float32)


def test_known_answer_four_points():
    X = four_points()
    res = spherical_kmeans(X, 2, seed=0)
    assert res.labels[0] == res.labels[1] != res.labels[2] == res.labels[3]
    # Each centroid bisects its pair: every point is 0.05 rad from it.
    np.testing.assert_allclose(res.similarity, np.cos(0.05), rtol=1e-6)
    np.testing.assert_allclose(res.inertia, 4 * (1 - np.cos(0.05)), rtol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(res.centroids, axis=1), 1.0, rtol=1e-6)


def test_scale_invariance_and_assignment_matches_numpy():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 8)).astype(np.float32)
    res = spherical_kmeans(X, 7, seed=3)
    scaled = spherical_kmeans(X * rng.uniform(0.1, 10, size=(500, 1)), 7, seed=3)
    np.testing.assert_allclose(scaled.centroids, res.centroids, atol=1e-5)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    S = Xn @ res.centroids.T
    np.testing.assert_array_equal(res.labels, S.argmax(axis=1))
    np.testing.assert_allclose(res.similarity, S.max(axis=1), atol=1e-6)
    sim, lab = assign(X, res.centroids)
    np.testing.assert_array_equal(lab, res.labels)


def test_deterministic_for_a_seed():
    X = np.random.default_rng(1).normal(size=(400, 6))
    a, b = spherical_kmeans(X, 5, seed=11), spherical_kmeans(X, 5, seed=11)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_training_sample_is_explicit_and_logged(caplog):
    X = np.random.default_rng(2).normal(size=(3000, 4))
    with caplog.at_level(logging.INFO, logger="datamix.index.kmeans"):
        res = spherical_kmeans(X, 10, n_train=600, seed=0)
    assert res.n_train == 600
    assert "trained k=10 on 600 of 3000 points (60 per centroid)" in caplog.text
    assert "of at most 20 iterations" in caplog.text
    # Default: 256 points per centroid, capped at n.
    assert spherical_kmeans(X, 2, seed=0).n_train == 512
    assert spherical_kmeans(X, 20, seed=0).n_train == 3000


def test_few_points_per_centroid_warns_when_we_subsampled(caplog):
    X = np.random.default_rng(3).normal(size=(500, 4))
    with caplog.at_level(logging.WARNING, logger="datamix.index.kmeans"):
        spherical_kmeans(X, 20, n_train=100, seed=0)
    assert "only 5 training points per centroid" in caplog.text


@pytest.mark.gpu
@pytest.mark.skipif(faiss_gpu_count() == 0, reason="faiss sees no GPU")
def test_gpu_matches_cpu():
    X = np.random.default_rng(4).normal(size=(2000, 16))
    cpu = spherical_kmeans(X, 8, seed=0, device="cpu")
    gpu = spherical_kmeans(X, 8, seed=0, device="cuda")
    np.testing.assert_allclose(gpu.inertia, cpu.inertia, rtol=0.05)
