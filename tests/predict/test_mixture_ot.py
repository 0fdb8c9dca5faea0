import numpy as np
import ot
import pytest

from datamix.ot import label_ot
from datamix.predict import MixtureOT, project_simplex, simplex_grid

DIRECTIONS = np.array([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0], [-1.0, 0.0, 1.0]])


def union(sources, p):
    X = np.concatenate([X for X, _ in sources.values()])
    src = np.concatenate([np.full(len(y), j) for j, (_, y) in enumerate(sources.values())])
    y = np.concatenate([y for _, y in sources.values()])
    n = np.bincount(src)
    return X, y, src, p[src] / n[src]


def build(sources, target, **kw):
    return MixtureOT(list(sources.values()), target, names=list(sources), **kw)


def test_terms_equal_label_ot_on_the_union(clouds):
    sources, target = clouds
    p = np.array([0.2, 0.3, 0.5])
    X, y, src, a = union(sources, p)
    m = build(sources, target, label_weight=0.7)
    terms = m.evaluate(p, terms=("feature", "label", "joint"))
    groups = src * 3 + y  # (source, label) pairs
    np.testing.assert_allclose(terms["joint"].value, label_ot(X, groups, *target, wa=a, label_weight=0.7).value,
                               rtol=1e-9)
    np.testing.assert_allclose(terms["feature"].value, label_ot(X, None, target[0], None, wa=a).value, rtol=1e-9)
    # label term: exact OT with the label cost alone, built point by point
    W = m.group_distances_
    _, gi = np.unique(groups, return_inverse=True)
    L = W[np.ix_(gi, target[1])]
    np.testing.assert_allclose(terms["label"].value, ot.emd2(a, np.full(40, 1 / 40), L), rtol=1e-9)


@pytest.mark.parametrize("term", ["feature", "label", "joint"])
@pytest.mark.parametrize("p", [[0.2, 0.3, 0.5], [0.6, 0.1, 0.3], [0.0, 0.4, 0.6]])
def test_exact_gradient_is_a_subgradient(clouds, term, p):
    # exact OT is convex and piecewise linear in the ratios: the potentials give a subgradient,
    # between the backward and forward differences in every direction (one-sided at the edge)
    sources, target = clouds
    m = build(sources, target)
    p = np.array(p)
    value = lambda q: m.evaluate(q, terms=(term,))[term].value  # noqa: E731
    g = m.evaluate(p, terms=(term,))[term].gradient
    np.testing.assert_allclose(p @ g, 0, atol=1e-9)
    h, tol = 1e-6, 1e-4 * (1 + np.abs(g).max())
    for d in np.vstack([DIRECTIONS, -DIRECTIONS]):
        if (p + h * d < 0).any():
            continue
        forward = (value(p + h * d) - value(p)) / h
        assert forward >= g @ d - tol, (term, d, forward, g @ d)
        if (p - h * d >= 0).all():
            backward = (value(p) - value(p - h * d)) / h
            assert backward <= g @ d + tol, (term, d, backward, g @ d)


def small(clouds, n=12):
    """Fewer points: Sinkhorn on the cost of every pair of points."""
    sources, (Xt, yt) = clouds
    return {k: (X[:n], y[:n]) for k, (X, y) in sources.items()}, (Xt[:n], yt[:n])


@pytest.mark.parametrize("term", ["feature", "joint"])
def test_sinkhorn_terms_equal_label_ot_on_the_union(clouds, term):
    # the cached costs and target self-term give label_ot's debiased divergence and potentials
    sources, target = small(clouds)
    m = build(sources, target, reg=0.3, label_weight=0.7)
    for p in (np.array([0.2, 0.3, 0.5]), np.array([0.0, 0.4, 0.6])):  # the second: a source without mass
        X, y, src, a = union(sources, p)
        labels = (src * 3 + y, target[1]) if term == "joint" else (None, None)
        ref = label_ot(X, labels[0], target[0], labels[1], wa=a, reg=0.3, label_weight=0.7)
        got = m.evaluate(p, terms=(term,))[term]
        # MixtureOT warm-starts from the uniform mixture, label_ot starts cold: both stop at a marginal
        # error of 1e-9, so they agree to about that (observed 4e-8 relative on the gradient)
        np.testing.assert_allclose(got.value, ref.value, rtol=1e-8)
        f = np.asarray(ref.potentials[0])
        np.testing.assert_allclose(got.gradient, m._tangent(f, a, np.ones(len(a), int), p), rtol=1e-6, atol=1e-9)
        assert m.evaluate(p, terms=(term,))[term] is got  # cached per mixture


def test_sinkhorn_gradient_matches_finite_differences(clouds, term="joint"):
    sources, target = small(clouds)
    m = build(sources, target, reg=0.1)
    p = np.array([0.25, 0.35, 0.4])
    g = m.evaluate(p, terms=(term,))[term].gradient
    h = 1e-4
    for d in DIRECTIONS[:2]:
        up, down = m.evaluate(p + h * d, terms=(term,)), m.evaluate(p - h * d, terms=(term,))
        fd = (up[term].value - down[term].value) / (2 * h)
        # the potentials are those of the non-debiased problem: the debiasing term adds the
        # gradient of -OT(a, a)/2, small at small reg (observed: within 5% of |g| at reg=0.1, 14% at 0.5)
        assert abs(fd - g @ d) <= 0.1 * np.linalg.norm(g), (term, d, fd, g @ d)


def test_invariant_to_permuting_points(clouds):
    sources, target = clouds
    rng = np.random.default_rng(0)
    shuffled = {k: (X[perm], y[perm]) for k, (X, y) in sources.items() for perm in [rng.permutation(len(y))]}
    perm_t = rng.permutation(40)
    m1 = build(sources, target)
    m2 = build(shuffled, (target[0][perm_t], target[1][perm_t]))
    for p in simplex_grid(3, 4)[::3]:
        r1, r2 = m1.evaluate(p, terms=("feature", "label")), m2.evaluate(p, terms=("feature", "label"))
        for t in r1:  # exact potentials are not unique (degenerate LP): compare values
            np.testing.assert_allclose(r1[t].value, r2[t].value, rtol=1e-9)
    # Sinkhorn potentials are unique: the gradient is invariant too
    p = np.array([0.2, 0.5, 0.3])
    sources, target = small((sources, target))
    shuffled = {k: (X[::-1], y[::-1]) for k, (X, y) in sources.items()}
    s1 = build(sources, target, reg=0.5).evaluate(p, terms=("feature",))["feature"]
    s2 = build(shuffled, (target[0][::-1], target[1][::-1]), reg=0.5).evaluate(p, terms=("feature",))["feature"]
    np.testing.assert_allclose(s1.value, s2.value, rtol=1e-7)
    np.testing.assert_allclose(s1.gradient, s2.gradient, atol=1e-6)


def test_sample_mode_is_ot_of_the_drawn_points(clouds):
    from datamix.data import sample_mixture
    from datamix.predict.mixture_ot import _Sized

    sources, target = clouds
    m = build(sources, target, mode="sample", n_draws=2, seed=5)
    p, N = np.array([0.5, 0.25, 0.25]), 24
    expected = []
    for d in range(2):
        mix = sample_mixture([_Sized(k, 30) for k in sources], p, N, seed=5 + d)
        X = np.concatenate([sources[k][0][mix.index[mix.source == j]] for j, k in enumerate(sources)])
        expected.append(label_ot(X, None, target[0], None).value)
    np.testing.assert_allclose(m.evaluate(p, N, ("feature",))["feature"].value, np.mean(expected), rtol=1e-9)
    with pytest.raises(ValueError, match="pass N"):
        m.evaluate(p)


def test_sinkhorn_is_close_to_exact(clouds):
    sources, target = small(clouds)
    p = np.array([0.3, 0.3, 0.4])
    exact = build(sources, target).evaluate(p, terms=("feature",))["feature"]
    soft = build(sources, target, reg=0.05).evaluate(p, terms=("feature",))["feature"]
    assert soft.value == pytest.approx(exact.value, rel=0.05)  # observed 1.4%
    np.testing.assert_allclose(p @ soft.gradient, 0, atol=1e-9)


def test_bad_input_and_documented_edge_cases(clouds, rng):
    sources, target = clouds
    with pytest.raises(ValueError, match="no labels"):
        MixtureOT([(np.zeros((3, 2)), None)], target, names=["x"])
    with pytest.raises(ValueError, match="features"):
        MixtureOT([(np.zeros((3, 5)), np.zeros(3))], target, names=["x"])
    with pytest.raises(ValueError, match="mode"):
        build(sources, target, mode="stream")
    # label sets that do not overlap: W is computed between every pair of classes
    far = {k: (X, y + 10) for k, (X, y) in sources.items()}
    m = build(far, target)
    assert m.group_distances_.shape == (9, 3) and m.evaluate(np.full(3, 1 / 3))["label"].value > 0
    # a source with one sample is a point mass
    one = dict(sources, c=(sources["c"][0][:1], sources["c"][1][:1]))
    r = build(one, target).evaluate(np.array([0.2, 0.2, 0.6]))
    assert np.isfinite(r["feature"].value) and np.isfinite(r["label"].gradient).all()
    assert project_simplex([0.2, 0.2, 0.7]).sum() == pytest.approx(1)
