"""The Ray engine: shard steps run by Ray Data ``map_batches`` on a pool of actors, and
independent tasks (proxy trainings) as plain Ray tasks.

Each shard task becomes one row of a Ray dataset (one block per task), and ``map_batches`` calls
the step with ``batch_size=1`` on a fixed pool of actors: the step (an embedding model, the
k-means centroids, the sources to write) is built once per actor from arguments put once in the
object store. A killed actor is restarted and its shard retried (``max_retries`` times); since a
step writes its shard files atomically and only the driver lists them in a manifest, a retried or
re-run shard replaces its own files and no sample is lost or held twice.

:meth:`RayEngine.map_tasks` runs one Ray task per item instead (the ``measure`` stage: one proxy
training each), with the arguments all tasks share put once in the object store, and yields each
result as its task finishes; a task whose worker died is retried ``max_retries`` times.

Resources per actor (or task) come from ``engine.resources.<stage>``
(:class:`datamix.config.StageResources`): ``num_cpus`` (default 1), ``num_gpus`` (default: 1 for
``embed`` and ``measure`` when the cluster has GPUs — for ``measure`` only when the work can use
one — else 0) and ``concurrency`` (default: as many actors, or tasks in flight, as the cluster's
CPUs — or GPUs — allow, at most one per task).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
import warnings
from typing import Any, Callable, Iterator, Sequence

from datamix.engine import require_ray
from datamix.engine.local import _item

__all__ = ["RayEngine"]

logger = logging.getLogger(__name__)

STAGES = ("embed", "score", "apply", "measure")
GPU_STAGES = ("embed", "measure")  # stages that take a GPU by default when the cluster has some


class _StepActor:
    """The callable class Ray Data runs: builds ``step(**kwargs)`` once per actor, from kwargs held
    in the object store (the reference is wrapped in a list so that Ray hands it over unresolved and
    the actor's constructor arguments stay small)."""

    def __init__(self, step: type, kwargs_ref: list):
        import ray

        self.fn = step(**ray.get(kwargs_ref[0]))

    def __call__(self, batch: dict) -> dict:
        return self.fn(batch)


@contextlib.contextmanager
def _user_errors():
    """Raise the user error (ValueError, TypeError) behind a Ray task error as itself."""
    import ray

    try:
        yield
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if not isinstance(cause, (ValueError, TypeError)):
            raise
        raise cause from exc


def _call(fn: Callable, item, shared: dict):
    """The body of a :meth:`RayEngine.map_tasks` task (Ray resolves ``shared``, a top-level object
    reference, before the call)."""
    return fn(item, **shared)


class RayEngine:
    """Run shard tasks on Ray Data actors, and independent tasks as Ray tasks.

    Parameters
    ----------
    address : str, optional
        Passed to ``ray.init`` when Ray is not initialised yet in this process: None starts a local
        Ray instance (or joins the cluster that ``RAY_ADDRESS`` names), ``"auto"`` joins a running
        cluster, ``"ray://host:10001"`` a remote one. When Ray is already initialised it is used as is.
    num_cpus : int, optional
        CPUs of a local Ray instance started here (default: all of this machine's).
    resources : StageResourcesConfig or dict, optional
        Per stage (``embed``, ``score``, ``apply``): ``num_cpus``, ``num_gpus``, ``concurrency``.
    max_retries : int, default=3
        Restarts of a killed actor and retries of the shard it held; beyond them the stage fails,
        and running it again resumes from the shards done.
    """

    name = "ray"

    def __init__(self, *, address: str | None = None, num_cpus: int | None = None, resources=None,
                 max_retries: int = 3):
        ray = require_ray()
        if int(max_retries) != max_retries or max_retries < 0:
            raise ValueError(f"max_retries={max_retries!r} must be an integer >= 0")
        self.max_retries = int(max_retries)
        self.resources = _resources_dict(resources)
        if not ray.is_initialized():
            options = {"include_dashboard": False, "logging_level": logging.WARNING}
            if address is None and num_cpus is not None:
                options["num_cpus"] = int(num_cpus)
            ray.init(address=address, **options)
            logger.info("started Ray (%s): %s", address or "local instance", ray.cluster_resources())
        elif address is not None or num_cpus is not None:
            logger.info("Ray is already initialised in this process; address/num_cpus are not used")

    def __repr__(self) -> str:
        return f"RayEngine(max_retries={self.max_retries}, resources={self.resources})"

    def stage_options(self, stage: str, n_tasks: int, *, use_gpu: bool = True) -> dict:
        """Per-actor (or per-task) ``num_cpus``, ``num_gpus`` and the pool ``size`` (actors, or tasks
        in flight) for ``stage`` and ``n_tasks`` tasks; ``use_gpu=False`` takes no GPU by default."""
        import ray

        if stage not in STAGES:
            raise ValueError(f"stage={stage!r}; choose one of {STAGES}")
        res = self.resources.get(stage, {})
        cluster = ray.cluster_resources()
        cpus, gpus = float(cluster.get("CPU", 1)), float(cluster.get("GPU", 0))
        num_cpus = float(res.get("num_cpus") or 1)
        num_gpus = res.get("num_gpus")
        if num_gpus is None:
            num_gpus = 1.0 if stage in GPU_STAGES and use_gpu and gpus > 0 else 0.0
        if num_gpus > gpus:
            raise ValueError(f"engine.resources.{stage}.num_gpus={num_gpus} but the Ray cluster has {gpus:g} "
                             "GPUs; lower it or join a cluster with GPUs")
        if num_cpus > cpus:
            raise ValueError(f"engine.resources.{stage}.num_cpus={num_cpus:g} but the Ray cluster has {cpus:g} "
                             "CPUs; lower it")
        size = res.get("concurrency")
        if size is None:
            size = math.floor(cpus / num_cpus)
            if num_gpus > 0:
                size = min(size, math.floor(gpus / num_gpus))
        size = max(1, min(int(size), n_tasks))
        return {"num_cpus": num_cpus, "num_gpus": float(num_gpus), "size": size}

    def map_shards(self, step: type, tasks: Sequence[dict], *, fn_kwargs: dict, stage: str) -> Iterator[dict]:
        """Yield one result row per task, as the actors finish them (in any order)."""
        import ray
        import ray.data

        tasks = list(tasks)
        if not tasks:
            return
        opts = self.stage_options(stage, len(tasks))
        logger.info("ray %s: %d shards on %d actors (%g CPU, %g GPU each)", stage, len(tasks), opts["size"],
                    opts["num_cpus"], opts["num_gpus"])
        ctx = ray.data.DataContext.get_current()
        # the driver shows progress; a step's ValueError reaches the caller as a ValueError (with
        # the worker's traceback) rather than wrapped in Ray Data's UserCodeException
        options = {"enable_progress_bars": False, "print_on_execution_start": False,
                   "raise_original_map_exception": True}
        saved = {k: getattr(ctx, k) for k in options if hasattr(ctx, k)}
        for k in saved:
            setattr(ctx, k, options[k])
        kwargs_ref = ray.put(fn_kwargs)
        try:
            with _user_errors():
                ds = ray.data.from_items(tasks, override_num_blocks=len(tasks))
                with warnings.catch_warnings():
                    # Ray 2.60 takes actor restarts only through the (deprecated) **ray_remote_args
                    warnings.filterwarnings("ignore", message=".*ray_remote_args.*")
                    ds = ds.map_batches(
                        _StepActor, fn_constructor_args=(step, [kwargs_ref]), batch_size=1, batch_format="numpy",
                        compute=ray.data.ActorPoolStrategy(size=opts["size"]), num_cpus=opts["num_cpus"],
                        num_gpus=opts["num_gpus"], **self._retry_args())
                for row in ds.iter_rows():
                    yield {k: _item(v) if not isinstance(v, (list, tuple)) else v for k, v in row.items()}
        finally:
            for k, v in saved.items():
                setattr(ctx, k, v)
            del kwargs_ref

    def map_tasks(self, fn: Callable, items: Sequence, *, shared: dict, stage: str,
                  use_gpu: bool = True) -> Iterator[tuple[int, Any]]:
        """Run ``fn(item, **shared)`` as one Ray task per item; yield ``(index, result)`` as tasks finish.

        ``shared`` is put in the object store once, for every task; ``fn`` must be importable by
        the workers (a module-level function). At most ``size`` tasks are in flight
        (:meth:`stage_options`), started in item order. When a task raises, the tasks still in
        flight are cancelled and its error is raised (a ValueError or TypeError as such).
        """
        import ray

        items = list(items)
        if not items:
            return
        opts = self.stage_options(stage, len(items), use_gpu=use_gpu)
        logger.info("ray %s: %d tasks, %d at a time (%g CPU, %g GPU each)", stage, len(items), opts["size"],
                    opts["num_cpus"], opts["num_gpus"])
        task = ray.remote(_call).options(num_cpus=opts["num_cpus"], num_gpus=opts["num_gpus"],
                                         max_retries=self.max_retries)
        shared_ref = ray.put(shared)
        todo = iter(enumerate(items))
        running = {}
        try:
            with _user_errors():
                while True:
                    for i, item in todo:
                        running[task.remote(fn, item, shared_ref)] = i
                        if len(running) >= opts["size"]:
                            break
                    if not running:
                        return
                    [ref], _ = ray.wait(list(running), num_returns=1)
                    i = running.pop(ref)
                    yield i, ray.get(ref)
        finally:
            for ref in running:
                ray.cancel(ref)

    def _retry_args(self) -> dict:
        import ray.data

        params = inspect.signature(ray.data.Dataset.map_batches).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()) or "max_restarts" in params:
            return {"max_restarts": self.max_retries, "max_task_retries": self.max_retries}
        logger.warning("this Ray Data takes no max_restarts; actors are restarted by its own rules")
        return {}


def _resources_dict(resources) -> dict:
    """``{stage: {num_cpus, num_gpus, concurrency}}`` from a config model, a dict or None."""
    if resources is None:
        return {}
    if hasattr(resources, "model_dump"):
        resources = resources.model_dump()
    out = {}
    for stage, res in dict(resources).items():
        if stage not in STAGES:
            raise ValueError(f"resources for unknown stage {stage!r}; stages: {STAGES}")
        if res is None:
            continue
        res = res.model_dump() if hasattr(res, "model_dump") else dict(res)
        unknown = sorted(set(res) - {"num_cpus", "num_gpus", "concurrency"})
        if unknown:
            raise ValueError(f"resources.{stage}: unknown keys {unknown}; allowed: concurrency, num_cpus, num_gpus")
        out[stage] = res
    return out
