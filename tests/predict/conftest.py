import numpy as np
import pytest


@pytest.fixture
def clouds():
    """Three labelled 2-d sources and a target: small enough for exact OT in milliseconds."""
    rng = np.random.default_rng(1)
    sources = {}
    for i, name in enumerate(["a", "b", "c"]):
        y = rng.integers(0, 3, 30)
        X = rng.normal(size=(30, 2)) * 0.6 + np.array([[0, 0], [3, 0], [0, 3]])[y] + i * np.array([0.8, -0.4])
        if name == "b":  # b: 40% wrong labels
            flip = rng.random(30) < 0.4
            y = np.where(flip, (y + 1) % 3, y)
        sources[name] = (X, y)
    yt = rng.integers(0, 3, 40)
    target = (rng.normal(size=(40, 2)) * 0.6 + np.array([[0, 0], [3, 0], [0, 3]])[yt], yt)
    return sources, target
