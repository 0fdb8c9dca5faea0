"""A bundled scenario: candidate sources, the target set they are curated for, and revealed samples."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from datamix.data.sources import Source


@dataclass(frozen=True)
class Scenario:
    """Candidate sources and the target set they are curated for."""

    name: str
    sources: list
    target: Source
    description: str

    def source(self, name: str) -> Source:
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(f"scenario {self.name!r} has no source {name!r}; sources: {[s.name for s in self.sources]}")


def reveal(sources: list[Source], revealed: float | None, rng: np.random.Generator) -> list[Source]:
    """Keep a random ``revealed`` share of each source, recording its full size as the offer."""
    if revealed is None:
        return sources
    if not 0 < revealed <= 1:
        raise ValueError(f"revealed={revealed!r} must be in (0, 1]: the share of each offer shown")
    out = []
    for s in sources:
        keep = np.sort(rng.choice(len(s), max(1, round(revealed * len(s))), replace=False))
        out.append(Source(name=s.name, dataset=s.dataset.select(keep), field=s.field, kind=s.kind,
                          label_field=s.label_field, id_field=s.id_field, price=s.price,
                          offer_size=len(s), origin=s.origin))
    return out
