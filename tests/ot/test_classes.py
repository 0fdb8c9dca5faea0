"""Class distances (Gaussian with singular covariances, caching, self-terms), bad inputs, the OTDD convention."""

import numpy as np
import ot
import pytest

from datamix.ot import class_distances, entropic_ot, label_ot, label_ot_distance


def eig_clipped_w2(A, B):
    """Reference Bures W2²: PSD square roots by SVD of the symmetric covariances, cross term by eigenvalues."""
    def sqrt_psd(S):
        U, s, _ = np.linalg.svd((S + S.T) / 2)
        return (U * np.sqrt(s)) @ U.T

    Sa, Sb = np.cov(A, rowvar=False), np.cov(B, rowvar=False)
    ra = sqrt_psd(Sa)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(ra @ Sb @ ra), 0, None)).sum()
    return ((A.mean(0) - B.mean(0)) ** 2).sum() + np.trace(Sa) + np.trace(Sb) - 2 * cross


def test_gaussian_distance_with_constant_features_has_the_closed_form(rng):
    # constant features (as in digits' border pixels): covariances diag(s1², s2², 0), diag(t1², t2², 0)
    A = np.column_stack([rng.normal(size=300), rng.normal(size=300), np.zeros(300)])
    B = np.column_stack([3 * rng.normal(size=250), 0.5 * rng.normal(size=250), np.full(250, 7.0)]) + [1.0, 2.0, 0.0]
    W = class_distances(A, np.zeros(300, int), B, np.zeros(250, int), method="gaussian")[0, 0]
    np.testing.assert_allclose(W, eig_clipped_w2(A, B), rtol=1e-10)
    # the closed form where the sample covariances are exactly diagonal (columns made orthogonal):
    # W = |m - m'|² + Σ_k (s_k - t_k)², the constant feature contributing 0
    Ad, Bd = A.copy(), B.copy()
    Ad[:, :2] = np.linalg.qr(A[:, :2] - A[:, :2].mean(0))[0] * np.sqrt(299) * [1.0, 2.0]
    Bd[:, :2] = np.linalg.qr(B[:, :2] - B[:, :2].mean(0))[0] * np.sqrt(249) * [3.0, 0.5]
    closed = ((Ad.mean(0) - Bd.mean(0)) ** 2).sum() + (1.0 - 3.0) ** 2 + (2.0 - 0.5) ** 2
    Wd = class_distances(Ad, np.zeros(300, int), Bd, np.zeros(250, int), method="gaussian")[0, 0]
    np.testing.assert_allclose(Wd, closed, rtol=1e-9)


def test_gaussian_distance_with_fewer_points_than_features_is_finite(rng):
    # d = 20 > 6 points per class: rank-deficient covariances, where POT's sqrtm meets negative round-off
    Xa, Xb = rng.normal(size=(12, 20)), rng.normal(size=(18, 20)) + 0.3
    ia, ib = np.repeat([0, 1], 6), np.repeat([0, 1, 2], 6)
    W = class_distances(Xa, ia, Xb, ib, method="gaussian")
    assert np.isfinite(W).all() and (W > 0).all()
    for i in range(2):
        for j in range(3):
            np.testing.assert_allclose(W[i, j], eig_clipped_w2(Xa[ia == i], Xb[ib == j]), rtol=1e-8)  # observed 3e-9
    value = label_ot_distance(Xa, ia, Xb, ib, label_method="gaussian")
    M = ot.dist(Xa, Xb) + W[np.ix_(ia, ib)]
    np.testing.assert_allclose(value, ot.emd2(np.full(12, 1 / 12), np.full(18, 1 / 18), M), rtol=1e-10)
    assert value > 0


def test_gaussian_self_distance_is_zero_and_tables_are_symmetric(rng):
    X, i = rng.normal(size=(60, 4)), np.repeat([0, 1, 2], 20)
    for method in ("exact", "gaussian"):
        W_self = class_distances(X, i, X, i, method=method)  # self-term: upper triangle only
        W_full = class_distances(X, i, X.copy() + 0.0, i.copy(), method=method)  # same data, other objects
        np.testing.assert_allclose(np.diag(W_full), 0, atol=1e-9)
        np.testing.assert_allclose(W_self, W_full, atol=1e-9)
        np.testing.assert_allclose(W_self, W_self.T)


def test_class_tables_are_cached_by_content_and_copied(rng):
    Xa, Xb = rng.normal(size=(30, 2)), rng.normal(size=(20, 2))
    ia, ib = np.repeat([0, 1], 15), np.repeat([0, 1], 10)
    W1 = class_distances(Xa, ia, Xb, ib)
    W1[0, 0] = -1.0  # the caller's copy, not the cache's
    W2 = class_distances(Xa.copy(), ia, Xb, ib)
    assert W2[0, 0] > 0
    Xa[0, 0] += 1.0  # other content, other table
    assert class_distances(Xa, ia, Xb, ib)[0, 0] != W2[0, 0]


def test_value_is_twice_otdd_and_projektor():
    # A = {(0, c0), (4, c1)}, B = {(1, c0), (6, c1)}: W(c0,c0) = 1, W(c1,c1) = 4, the identity plan is optimal.
    # datamix: ((1 + 1) + (4 + 4)) / 2 = 5; OTDD/Projektor (½||x - x'||² + ½W, geomloss p = 2): 2.5
    Xa, Xb = np.array([[0.0], [4.0]]), np.array([[1.0], [6.0]])
    y = np.array([0, 1])
    np.testing.assert_allclose(label_ot_distance(Xa, y, Xb, y), 5.0, rtol=1e-12)
    otdd = 2.5
    np.testing.assert_allclose(label_ot_distance(Xa, y, Xb, y), 2 * otdd, rtol=1e-12)


def test_factor_two_holds_on_random_data(rng):
    Xa, Xb = rng.normal(size=(25, 3)), rng.normal(size=(20, 3)) + 0.5
    ya, yb = rng.integers(0, 3, 25), rng.integers(0, 2, 20)
    W = np.array([[ot.emd2(np.full((ya == i).sum(), 1 / (ya == i).sum()), np.full((yb == j).sum(), 1 / (yb == j).sum()),
                           ot.dist(Xa[ya == i], Xb[yb == j])) for j in range(2)] for i in range(3)])
    half = 0.5 * ot.dist(Xa, Xb) + 0.5 * W[np.ix_(ya, yb)]  # OTDD's exact cost, p = 2
    otdd = ot.emd2(np.full(25, 1 / 25), np.full(20, 1 / 20), half)
    np.testing.assert_allclose(label_ot_distance(Xa, ya, Xb, yb), 2 * otdd, rtol=1e-10)


@pytest.mark.parametrize("change,match", [
    (lambda Xa, ya: (np.where(np.arange(Xa.size).reshape(Xa.shape) == 7, np.nan, Xa), ya),
     r"Xa holds NaN or inf in 1 row\(s\) \(first: \[2\]\)"),
    (lambda Xa, ya: (Xa, np.where(np.arange(len(ya)) == 3, np.nan, ya.astype(float))), "ya holds NaN labels"),
    (lambda Xa, ya: (Xa[:, :2], ya), "Xa has 2 features and Xb 3"),
    (lambda Xa, ya: (Xa[:0], ya[:0]), r"Xa has shape \(0, 3\)"),
])
def test_bad_inputs_are_refused_by_name(rng, change, match):
    Xa, Xb = rng.normal(size=(10, 3)), rng.normal(size=(8, 3))
    ya, yb = rng.integers(0, 2, 10), rng.integers(0, 2, 8)
    Xa, ya = change(Xa, ya)
    with pytest.raises(ValueError, match=match):
        label_ot(Xa, ya, Xb, yb)


def test_empty_class_and_non_finite_distances_are_errors_naming_the_classes(rng):
    Xa, Xb = rng.normal(size=(6, 2)), rng.normal(size=(4, 2))
    with pytest.raises(ValueError, match=r"class index \[1\] of A has no points"):
        class_distances(Xa, np.array([0, 0, 2, 2, 2, 0]), Xb, np.zeros(4, int))
    Xa[4, 1] = np.nan  # class 1 of A (points 3..5); class_distances itself does not validate features
    with pytest.raises(ValueError, match=r"not finite for 2 class pair\(s\): \(A class '1', B class '0'\)"):
        class_distances(Xa, np.array([0, 0, 0, 1, 1, 1]), Xb, np.array([0, 0, 1, 1]), method="gaussian")
    M = ot.dist(Xb, Xb)
    M[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"not finite at 1 entries \(first: entry \(1, 2\)\)"):
        entropic_ot(np.full(4, 0.25), np.full(4, 0.25), M, reg=1.0)
    with np.errstate(over="ignore"), pytest.raises(ValueError, match=r"W is not finite .*\(A class 'b', B class 'u'\)"):
        label_ot(np.array([[0.0], [1e200]]), np.array(["a", "b"]), np.array([[-1e200], [0.0]]), np.array(["u", "v"]))
