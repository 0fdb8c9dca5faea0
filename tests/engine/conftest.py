"""One local Ray instance (2 CPUs) for every Ray test of the session; tests skip without Ray."""

import pytest


@pytest.fixture(scope="session")
def ray_cluster():
    """Ray started once, with 2 CPUs and no dashboard; shut down after the session."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="warning", log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()
