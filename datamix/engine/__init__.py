"""Execution engines for the per-sample stages (embed, score, apply) and the proxy trainings
(measure): ``local`` and ``ray``.

An engine maps a *shard step* over a list of shard tasks and yields one result row per task. A
shard step is a callable class (STYLE §5)::

    step = StepClass(**fn_kwargs)                # heavy state (a model, centroids) built once
    out = step(batch)                            # batch: dict[str, ndarray], one task per row
                                                 # out:   dict[str, ndarray], one result per row

A task is a small dict of scalars (a source name, a shard index, its rows ``start:stop``); the
step reads its own rows, does the work, and writes its shard files atomically itself; the driver
gathers the results and alone writes the manifests. Both engines call the *same* step on the same
shards (batch boundaries = shard boundaries), so they give bitwise the same results:

- :class:`~datamix.engine.local.LocalEngine` runs the tasks in this process, in order;
- :class:`~datamix.engine.ray.RayEngine` runs them with Ray Data ``map_batches`` on a pool of
  actors (the step is built once per actor; ``num_gpus`` per actor for embedding when the cluster
  has GPUs), restarting a killed actor and retrying its shard.

An engine also maps a function over independent *tasks* (:meth:`Engine.map_tasks`): the
``measure`` stage of curate trains one proxy per task (:class:`datamix.proxy.runs.MixtureRunner`)::

    for i, result in engine.map_tasks(fn, items, shared=shared, stage="measure"):
        ...                                      # result = fn(items[i], **shared), as tasks finish

``shared`` (the trainer, the training data, the target) is handed to every call; ``fn`` is a
module-level function. The local engine calls ``fn`` in item order; the Ray engine runs one Ray task
per item (``num_cpus`` 1, and one GPU when the cluster has GPUs and the work can use one), with
``shared`` put in the object store once, and yields results as tasks finish, so the caller can
record each at once and a killed run loses only the tasks in flight. ``fn`` is deterministic for
its item, so both engines give the same results.

Ray is optional: ``pip install 'datamix[ray]'``. Choose the engine in the run config (``engine:
ray``, see :class:`datamix.config.EngineConfig`) or pass one to :func:`datamix.embed.embed`,
:func:`datamix.prune.score_stores`, :func:`datamix.apply.apply_plan` and
:class:`~datamix.proxy.runs.MixtureRunner`.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Protocol, Sequence

from datamix.engine.local import LocalEngine

__all__ = ["Engine", "LocalEngine", "RAY_INSTALL_HINT", "get_engine", "require_ray"]

ENGINES = ("local", "ray")
RAY_INSTALL_HINT = "pip install 'datamix[ray]'"


class Engine(Protocol):
    """What the stages need of an engine."""

    name: str

    def map_shards(self, step: type, tasks: Sequence[dict], *, fn_kwargs: dict, stage: str) -> Iterator[dict]:
        """Run ``step(**fn_kwargs)`` over ``tasks`` (one task per call); yield one result row (a dict
        of scalars and 1-D arrays) per task, in any order. ``stage`` (embed, score, apply) picks the
        resources per worker."""

    def map_tasks(self, fn: Callable, items: Sequence, *, shared: dict, stage: str,
                  use_gpu: bool = True) -> Iterator[tuple[int, Any]]:
        """Call ``fn(item, **shared)`` once per item; yield ``(index of the item, result)`` as calls
        finish, in any order. ``stage`` (measure) picks the resources per task; ``use_gpu=False``
        takes no GPU unless the stage's resources ask for one."""


def require_ray():
    """Import and return the ``ray`` module, or raise ImportError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (the engine needs Ray Data, not only Ray core)
    except ImportError as exc:
        raise ImportError(f"engine 'ray' needs Ray Data, which is not installed ({exc}); install it with "
                          f"{RAY_INSTALL_HINT}, or use engine: local") from None
    return ray


def get_engine(spec: Any = None) -> Engine:
    """The engine that ``spec`` names.

    Parameters
    ----------
    spec : None, str, EngineConfig, RunConfig or Engine
        None or ``"local"``: the local engine; ``"ray"``: Ray with default settings; an
        :class:`~datamix.config.EngineConfig` (or a run config, whose ``engine`` is used); an
        engine object is returned as is.

    Returns
    -------
    Engine

    Raises
    ------
    ValueError
        For an unknown engine name.
    ImportError
        For ``ray`` when Ray is not installed (the message says ``pip install 'datamix[ray]'``).
    """
    if spec is None:
        return LocalEngine()
    if hasattr(spec, "map_shards"):
        return spec
    if hasattr(spec, "engine") and not isinstance(spec, str):  # a RunConfig
        spec = spec.engine
    if isinstance(spec, str):
        if spec not in ENGINES:
            raise ValueError(f"engine={spec!r}; choose one of {ENGINES}")
        name, options = spec, {}
    elif spec is None or getattr(spec, "name", None) in ENGINES:
        name = "local" if spec is None else spec.name
        options = {} if spec is None else {"address": spec.address, "num_cpus": spec.num_cpus,
                                           "resources": spec.resources, "max_retries": spec.max_retries}
    else:
        raise ValueError(f"engine {spec!r}: expected None, one of {ENGINES}, an EngineConfig or an engine object")
    if name == "local":
        return LocalEngine()
    require_ray()
    from datamix.engine.ray import RayEngine

    return RayEngine(**options)
