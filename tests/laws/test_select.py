"""select_law and extrapolation_split."""

import numpy as np
import pandas as pd
import pytest

from datamix.laws import Chinchilla, PowerLaw, chinchilla_loss, extrapolation_split, select_law


def test_extrapolation_split_keeps_the_smallest_points():
    scale = np.array([5.0, 1.0, 3.0, 3.0, 9.0, 2.0, 7.0, 4.0, 8.0, 6.0])
    mask = extrapolation_split(scale, train_fraction=0.7)
    np.testing.assert_array_equal(np.sort(scale[mask]), [1, 2, 3, 3, 4, 5, 6])
    # ties go to the training side
    np.testing.assert_array_equal(extrapolation_split([1.0, 2.0, 2.0, 3.0], train_fraction=0.5), [1, 1, 1, 0])
    with pytest.raises(ValueError, match="too few distinct"):
        extrapolation_split(np.ones(5))
    with pytest.raises(ValueError, match="train_fraction"):
        extrapolation_split(scale, train_fraction=1.5)


def test_select_law_prefers_the_law_that_extrapolates(rng):
    N, D = (a.ravel() for a in np.meshgrid(np.geomspace(1e7, 1e10, 6), np.geomspace(1e9, 1e12, 6)))
    X = pd.DataFrame({"N": N, "D": D, "n": D})
    y = chinchilla_loss(N, D, 1.8, 480.0, 2100.0, 0.35, 0.37) * (1 + 0.005 * rng.standard_normal(N.size))
    result = select_law({"power": PowerLaw(), "chinchilla": Chinchilla()}, X, y, scale=N * D)
    assert result.best == "chinchilla"
    assert result.errors["chinchilla"] < 0.01 < result.errors["power"]
    assert result.train_mask.sum() == 25
    # the winner is refitted on all points
    np.testing.assert_allclose(result.law.score(X, y), Chinchilla().fit(X, y).score(X, y))


def test_select_law_records_failures_and_names_duplicates(rng):
    n = np.geomspace(1e3, 1e6, 12)
    y = 1.0 + 30 * n**-0.4
    X = pd.DataFrame({"n": n})
    result = select_law([PowerLaw(), PowerLaw(loss="linear"), Chinchilla()], X, y, scale="n", refit=False)
    assert set(result.errors) == {"PowerLaw", "PowerLaw_2", "Chinchilla"}
    assert result.errors["Chinchilla"] == np.inf and "missing column" in result.messages["Chinchilla"]
    assert result.best.startswith("PowerLaw")
    with pytest.raises(ValueError, match="no candidate"):
        select_law([Chinchilla()], X, y, scale="n")
    with pytest.raises(ValueError, match="scale"):
        select_law([PowerLaw()], X, y, scale="zzz")
