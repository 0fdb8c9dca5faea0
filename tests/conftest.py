"""Shared fixtures. Tests never touch the network: the hub clients are put offline here."""

import os

for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[var] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

# The fits under test are small: multithreaded BLAS only spins inside L-BFGS-B there (measured
# 37x slower for a QQT fit on 2 busy cores), so the suite runs BLAS on one thread.
threadpool_limits(1)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def minilm():
    """The bundled all-MiniLM-L6-v2 text encoder, loaded once per test session."""
    from datamix.embed import TextEncoder

    return TextEncoder("minilm", device="cpu")


@pytest.fixture(scope="session")
def ray_cluster():
    """Ray started once, with 2 CPUs and no dashboard, for every Ray test of the session (skipped
    without Ray); shut down after the session."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="warning", log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()
