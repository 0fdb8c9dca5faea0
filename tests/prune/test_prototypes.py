"""prototype_scores against a numpy computation with the same centroids."""

import numpy as np
import pytest

from datamix.index import spherical_kmeans
from datamix.prune import prototype_scores


def numpy_prototype_scores(X, C):
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    Cn = C / np.linalg.norm(C, axis=1, keepdims=True)
    return 1 - (Xn @ Cn.T).max(axis=1)


@pytest.fixture
def emb():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(5, 16))
    return (np.repeat(centers, 60, axis=0) + 0.5 * rng.normal(size=(300, 16))).astype(np.float32)


def test_equals_numpy_given_the_same_centroids(emb):
    km = spherical_kmeans(emb, 5, seed=7)
    scores = prototype_scores(emb, 5, seed=7)
    np.testing.assert_allclose(scores, numpy_prototype_scores(emb, km.centroids), atol=1e-6)
    np.testing.assert_allclose(prototype_scores(emb, centroids=km.centroids), scores, atol=1e-6)


def test_known_answer_hand_placed_centroids():
    emb = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [-1.0, 0.0]])
    scores = prototype_scores(emb, centroids=[[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(scores, [0.0, 0.0, 1 - np.sqrt(0.5), 1.0], atol=1e-7)


def test_higher_is_harder_outliers_score_highest(emb):
    far = np.r_[emb, -emb[:3].mean(axis=0, keepdims=True)]
    scores = prototype_scores(far, 5, seed=0)
    assert scores[-1] == scores.max()
    assert np.all((scores >= -1e-6) & (scores <= 2 + 1e-6))


def test_class_conditional_scores_against_own_class_prototypes():
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(200, 8))
    labels = np.repeat([1, 0], 100)
    scores = prototype_scores(emb, 3, labels=labels, seed=2)
    shared_rng = np.random.default_rng(2)  # the classes draw from one generator, in sorted order
    for c in (0, 1):
        idx = labels == c
        km = spherical_kmeans(emb[idx], 3, seed=shared_rng)
        np.testing.assert_allclose(scores[idx], numpy_prototype_scores(emb[idx], km.centroids),
                                   atol=1e-6)


def test_bad_input(emb):
    bad = emb.copy()
    bad[[3, 9]] = np.nan
    with pytest.raises(ValueError, match=r"emb contains NaN or inf in 2 rows, first: \[3, 9\]"):
        prototype_scores(bad, 5)
    zero = emb.copy()
    zero[11] = 0
    with pytest.raises(ValueError, match=r"zero vectors in 1 row, first: \[11\]"):
        prototype_scores(zero, 5)
    with pytest.raises(ValueError, match="n_clusters=301 is larger than the number of samples"):
        prototype_scores(emb, 301)
    with pytest.raises(ValueError, match=r"labels has shape \(10,\) but emb has 300 samples"):
        prototype_scores(emb, 5, labels=np.zeros(10))
