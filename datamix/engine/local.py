"""The local engine: shard steps (and tasks) run in this process, one after the other, in order."""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import numpy as np

__all__ = ["LocalEngine", "task_batch", "result_rows"]


def task_batch(task: dict) -> dict[str, np.ndarray]:
    """One task as a batch of one row: ``{key: array([value])}`` (what Ray Data hands a step)."""
    return {k: np.asarray([v]) for k, v in task.items()}


def result_rows(out: dict) -> list[dict]:
    """Split a step's output batch (arrays of equal length m, or shape (m, ...)) into m row dicts."""
    if not isinstance(out, dict) or not out:
        raise TypeError(f"a shard step must return a non-empty dict of arrays, got {type(out).__name__}")
    columns = {k: np.asarray(v) if not isinstance(v, np.ndarray) else v for k, v in out.items()}
    lengths = {k: len(v) for k, v in columns.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"a shard step returned columns of different lengths: {lengths}")
    m = next(iter(lengths.values()))
    return [{k: _item(v[i]) for k, v in columns.items()} for i in range(m)]


def _item(v):
    """numpy scalars become Python scalars; arrays stay arrays."""
    return v.item() if isinstance(v, np.generic) else v


class LocalEngine:
    """Run every shard task in this process, in task order (the default engine).

    The step is built once, then called with one task per batch, exactly as the Ray engine's
    actors call it, so both engines give the same results. Memory holds one shard at a time.
    """

    name = "local"

    def map_shards(self, step: type, tasks: Sequence[dict], *, fn_kwargs: dict, stage: str) -> Iterator[dict]:
        """Yield ``step(**fn_kwargs)(task_batch(task))``'s row for each task, in order."""
        if not tasks:
            return
        fn = step(**fn_kwargs)
        for task in tasks:
            yield from result_rows(fn(task_batch(task)))

    def map_tasks(self, fn: Callable, items: Sequence, *, shared: dict, stage: str,
                  use_gpu: bool = True) -> Iterator[tuple[int, Any]]:
        """Yield ``(i, fn(items[i], **shared))`` for each item, in order (``stage`` and
        ``use_gpu`` only matter on Ray)."""
        for i, item in enumerate(items):
            yield i, fn(item, **shared)

    def __repr__(self) -> str:
        return "LocalEngine()"
