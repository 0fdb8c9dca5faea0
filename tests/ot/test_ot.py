import warnings

import numpy as np
import ot
import pytest
from sklearn.exceptions import ConvergenceWarning

from datamix.ot import class_distances, entropic_ot, label_ot, label_ot_distance, mixture_gradient
from datamix.ot.distance import _entropic, _joint_cost


def brute_force(Xa, ya, Xb, yb, label_weight=1.0):
    """Exact OT on the explicit joint cost, the label term computed for every pair of points."""
    M = np.empty((len(Xa), len(Xb)))
    for i in range(len(Xa)):
        for j in range(len(Xb)):
            A, B = Xa[ya == ya[i]], Xb[yb == yb[j]]
            w = ot.emd2(np.full(len(A), 1 / len(A)), np.full(len(B), 1 / len(B)), ot.dist(A, B))
            M[i, j] = ((Xa[i] - Xb[j]) ** 2).sum() + label_weight * w
    return ot.emd2(np.full(len(Xa), 1 / len(Xa)), np.full(len(Xb), 1 / len(Xb)), M)


def clouds(rng, na=24, nb=18, d=3):
    Xa, Xb = rng.normal(size=(na, d)), rng.normal(size=(nb, d)) + 0.7
    return Xa, rng.integers(0, 3, na), Xb, rng.integers(0, 2, nb)


@pytest.mark.parametrize("label_weight", [0.5, 1.0, 3.0])
def test_exact_equals_brute_force(rng, label_weight):
    Xa, ya, Xb, yb = clouds(rng)
    expected = brute_force(Xa, ya, Xb, yb, label_weight)
    np.testing.assert_allclose(label_ot_distance(Xa, ya, Xb, yb, label_weight=label_weight), expected, rtol=1e-6)


def test_label_sets_need_not_overlap(rng):
    Xa, ya, Xb, yb = clouds(rng)
    names_b = np.array(["cat", "dog"])[yb]
    r = label_ot(Xa, ya, Xb, names_b)
    assert r.label_distances.shape == (3, 2) and list(r.classes_b) == ["cat", "dog"]
    np.testing.assert_allclose(r.value, brute_force(Xa, ya, Xb, yb), rtol=1e-6)


def test_sinkhorn_converges_to_exact(rng):
    Xa, ya, Xb, yb = clouds(rng)
    exact = label_ot_distance(Xa, ya, Xb, yb)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # reg=0.01 stops at 1e-8 > tol: said, and fine here
        errors = [abs(label_ot_distance(Xa, ya, Xb, yb, reg=r, max_iter=20000) - exact) / exact
                  for r in (1.0, 0.1, 0.01)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.005  # observed 0.2% at reg=0.01


def test_symmetric_self_term_equals_alternating_sinkhorn(rng):
    X = rng.normal(size=(40, 2))
    M = ot.dist(X, X)
    a = rng.random(40)
    a[3] = 0.0  # a point without mass
    a /= a.sum()
    for reg in (1.0, 0.05):
        sym = entropic_ot(a, a, M, reg=reg, symmetric=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # tol=1e-12 is out of reach at reg=0.05
            alt = entropic_ot(a, a, M, reg=reg, max_iter=200_000, tol=1e-12)
        # observed 23 and 21 iterations; alternating updates took 40 at reg=1 and did not reach tol=1e-9
        # in 1,000 iterations at reg=0.05 (nor 1e-12 in 200,000: the reference is the less accurate)
        assert sym.converged and sym.n_iter < 50
        np.testing.assert_allclose(sym.value, alt.value, rtol=1e-8)
        np.testing.assert_allclose(sym.plan, alt.plan, atol=5e-8)  # the alternating plan is the less symmetric
        np.testing.assert_allclose(sym.plan.sum(0), a, atol=1e-8)
        f_alt, g_alt = alt.potentials  # (f + c, g - c): their mean is the symmetric potential
        np.testing.assert_allclose(sym.potentials[0], (f_alt + g_alt) / 2, atol=1e-6)
    with pytest.raises(ValueError, match="self-term"):
        entropic_ot(a, np.roll(a, 1), M, reg=1.0, symmetric=True)


def test_without_labels_it_is_plain_ot(rng):
    Xa, ya, Xb, yb = clouds(rng)
    plain = ot.emd2(np.full(24, 1 / 24), np.full(18, 1 / 18), ot.dist(Xa, Xb))
    np.testing.assert_allclose(label_ot_distance(Xa, None, Xb, None), plain, rtol=1e-10)
    np.testing.assert_allclose(label_ot_distance(Xa, ya, Xb, yb, label_weight=0.0), plain, rtol=1e-10)


def test_a_dataset_is_at_distance_zero_from_itself(rng):
    X = np.array([[0.0, 0.0], [5.0, 5.0]])
    r = label_ot(X, np.array([0, 1]), X, np.array([0, 1]))
    assert r.value == pytest.approx(0, abs=1e-12)
    np.testing.assert_allclose(r.plan, np.diag([0.5, 0.5]))
    Xa, ya, _, _ = clouds(rng)
    # debiased: zero up to the solvers' tolerance (the self-terms use the symmetric solver, the cross
    # term alternating updates; observed -9e-8 at tol=1e-9, against OT values of about 6)
    assert label_ot_distance(Xa, ya, Xa, ya, reg=0.5) == pytest.approx(0, abs=1e-6)


def test_translation_known_answer_for_both_label_methods(rng):
    A = rng.normal(size=(200, 2))
    shift = np.array([3.0, 4.0])
    i = np.zeros(200, dtype=int)
    for method in ("exact", "gaussian"):
        W = class_distances(A, i, A + shift, i, method=method)
        np.testing.assert_allclose(W, [[25.0]], rtol=1e-6)


def test_invariant_to_permuting_points(rng):
    Xa, ya, Xb, yb = clouds(rng)
    perm = rng.permutation(len(Xa))
    for reg in (None, 0.3):
        r1, r2 = label_ot(Xa, ya, Xb, yb, reg=reg), label_ot(Xa[perm], ya[perm], Xb, yb, reg=reg)
        np.testing.assert_allclose(r1.value, r2.value, rtol=1e-8)
    np.testing.assert_allclose(r1.potentials[0][perm], r2.potentials[0], atol=1e-6)


def mixture(rng):
    sizes = [20, 30, 25]
    X = np.concatenate([rng.normal(loc=i, size=(n, 2)) for i, n in enumerate(sizes)])
    src = np.repeat(np.arange(3), sizes)
    return X, rng.integers(0, 2, len(X)), src, rng.normal(loc=1.2, size=(40, 2)), rng.integers(0, 2, 40)


def point_weights(p, src):
    return p[src] / np.bincount(src)[src]


@pytest.mark.parametrize("reg,rtol", [(0.5, 1e-5), (None, 0.10)])
def test_mixture_gradient_matches_finite_differences(rng, reg, rtol):
    X, y, src, Xv, yv = mixture(rng)
    p = np.array([0.5, 0.3, 0.2])
    res = label_ot(X, y, Xv, yv, reg=reg, wa=point_weights(p, src))
    grad = mixture_gradient(res.potentials[0], src, p)
    nx = ot.backend.NumpyBackend()
    M, _ = _joint_cost(X, np.unique(y, return_inverse=True)[1], Xv, np.unique(yv, return_inverse=True)[1],
                       1.0, nx, method="exact", max_class_size=2000)

    def value(q):  # the non-debiased cost whose potentials give the gradient
        if reg is None:
            return label_ot_distance(X, y, Xv, yv, wa=point_weights(q, src))
        return _entropic(point_weights(q, src), np.full(40, 1 / 40), M, reg, nx, max_iter=20000, tol=1e-13).value

    fd = []
    for i in range(3):
        d = -p / (1 - p[i])
        d[i] = 1.0
        fd.append((value(p + 1e-4 * d) - value(p - 1e-4 * d)) / 2e-4)
    np.testing.assert_allclose(grad, fd, rtol=rtol)  # observed: 1e-8 (Sinkhorn), 5% (exact)


def test_mixture_gradient_known_answer():
    f = np.array([1.0, 3.0, 10.0, 10.0, -2.0])
    src = np.array([0, 0, 1, 1, 2])
    g = mixture_gradient(f, src, np.array([0.5, 0.25, 0.25]))
    np.testing.assert_allclose(g, [2 - (10 - 2) / 2, 10 - (0.5 * 2 + 0.25 * -2) / 0.75, -2 - (0.5 * 2 + 0.25 * 10) / 0.75])
    np.testing.assert_allclose(mixture_gradient(f, src, np.array([1.0, 0, 0]))[0], 2 - 4)


def test_torch_backend_gives_the_same_answer(rng):
    torch = pytest.importorskip("torch")
    Xa, ya, Xb, yb = clouds(rng)
    for reg in (None, 0.3):
        expected = label_ot_distance(Xa, ya, Xb, yb, reg=reg)
        got = label_ot_distance(torch.from_numpy(Xa), ya, torch.from_numpy(Xb), yb, reg=reg)
        np.testing.assert_allclose(got, expected, rtol=1e-6)


@pytest.mark.gpu
def test_sinkhorn_on_cuda(rng):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    Xa, ya, Xb, yb = clouds(rng)
    got = label_ot_distance(torch.from_numpy(Xa).cuda(), ya, torch.from_numpy(Xb).cuda(), yb, reg=0.3)
    np.testing.assert_allclose(got, label_ot_distance(Xa, ya, Xb, yb, reg=0.3), rtol=1e-6)


def test_one_sample_source(rng):
    Xa = np.array([[1.0, 2.0]])
    Xb = rng.normal(size=(5, 2))
    np.testing.assert_allclose(label_ot_distance(Xa, [0], Xb, np.zeros(5)), 2 * ((Xa - Xb) ** 2).sum(1).mean())


@pytest.mark.parametrize("kwargs,match", [
    (dict(wa=np.full(24, 0.1)), "wa sums to 2.4"),
    (dict(wb=np.ones(3) / 3), r"wb has shape \(3,\)"),
    (dict(wa=np.r_[-1.0, np.full(23, 2 / 23)]), "wa must be finite and >= 0"),
    (dict(reg=0.0), "reg=0.0 must be > 0"),
    (dict(label_weight=-1.0), "label_weight=-1.0"),
    (dict(label_method="sliced"), "label method='sliced'"),
])
def test_bad_input(rng, kwargs, match):
    Xa, ya, Xb, yb = clouds(rng)
    with pytest.raises(ValueError, match=match):
        label_ot(Xa, ya, Xb, yb, **kwargs)


def test_bad_shapes(rng):
    Xa, ya, Xb, yb = clouds(rng)
    with pytest.raises(ValueError, match="both datasets"):
        label_ot(Xa, ya, Xb, None)
    with pytest.raises(ValueError, match="Xa has 3 features and Xb 2"):
        label_ot(Xa, ya, Xb[:, :2], yb)
    with pytest.raises(ValueError, match=r"ya has shape \(5,\)"):
        label_ot(Xa, ya[:5], Xb, yb)
    with pytest.raises(ValueError, match="sources \\[1\\] have no points"):
        mixture_gradient(np.zeros(3), np.array([0, 0, 2]), np.ones(3) / 3)


def test_exact_potentials_of_zero_weight_points_are_tight(rng):
    """A source with weight 0 gets the c-transform potential, so its gradient is the real slope."""
    X, y, src, Xv, yv = mixture(rng)
    p = np.array([0.6, 0.4, 0.0])
    res = label_ot(X, y, Xv, yv, wa=point_weights(p, src))
    f = np.asarray(res.potentials[0])
    g = np.asarray(res.potentials[1])
    M, _ = _joint_cost(X, np.unique(y, return_inverse=True)[1], Xv, np.unique(yv, return_inverse=True)[1],
                       1.0, ot.backend.NumpyBackend(), method="exact", max_class_size=2000)
    zero = src == 2
    np.testing.assert_allclose(f[zero], (M[zero] - g[None, :]).min(axis=1))
    grad = mixture_gradient(f, src, p)
    d = -p / (1 - p[2])
    d[2] = 1.0
    slope = (label_ot_distance(X, y, Xv, yv, wa=point_weights(p + 1e-4 * d, src)) -
             label_ot_distance(X, y, Xv, yv, wa=point_weights(p, src))) / 1e-4
    np.testing.assert_allclose(grad[2], slope, rtol=0.1)
