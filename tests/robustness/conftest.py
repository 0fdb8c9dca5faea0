"""Input files and base configs of the robustness tests: two text/vector sources and a target."""

import json
import zlib
from pathlib import Path

import numpy as np
import pytest

TINY_LM = {"model": "lm", "width": 16, "depth": 1, "heads": 2, "context": 32, "batch_size": 4}


def _docs(prefix: str, n: int) -> list[dict]:
    words = "data scaling laws curate mixture tokens budget epochs quality filter source target".split()
    rng = np.random.default_rng(zlib.crc32(prefix.encode()))
    return [{"text": f"{prefix} {i}: " + " ".join(rng.choice(words, 40)), "label": int(i % 2), "uid": f"{prefix}{i}",
             "x": rng.normal(size=4).round(4).tolist(), "q": float(i)} for i in range(n)]


def _jsonl(path: Path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture(scope="session")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    out = {name: _jsonl(d / f"{name}.jsonl", _docs(name, n)) for name, n in (("web", 40), ("books", 40),
                                                                                ("target", 20))}
    out["dir"] = str(d)
    (d / "tokenizer.json").write_text('{"not": "a tokenizer"}')
    out["bad_tokenizer"] = str(d / "tokenizer.json")
    return out


def text_config(files) -> dict:
    return {"pipeline": "curate", "name": "t", "seed": 0,
            "data": {"sources": [{"name": "web", "path": files["web"]}, {"name": "books", "path": files["books"]}],
                     "target": {"name": "target", "path": files["target"]}},
            "curate": {"trainer": dict(TINY_LM), "buckets": 2, "passes": [0.5, 1.0], "seeds": [0],
                       "frontier": [0.5, 1.0], "verify": False, "n_bootstrap": 2, "n_starts": 1}}


def vector_config(files, pipeline: str = "curate") -> dict:
    src = {"field": "x", "kind": "vector", "label": "label"}
    cfg = {"pipeline": pipeline, "name": "v", "seed": 0, "embed": {"model": "identity"},
           "data": {"sources": [{"name": "web", "path": files["web"], **src, "price": 1.0},
                                {"name": "books", "path": files["books"], **src, "price": 2.0}],
                    "target": {"name": "target", "path": files["target"], **src}}}
    if pipeline == "purchase":
        cfg["purchase"] = {"budget": 20, "sizes": [10, 20]}
    if pipeline == "curate":
        cfg["curate"] = {"buckets": 2, "passes": [0.5, 1.0], "seeds": [0], "frontier": [1.0], "verify": False,
                         "trainer": {"model": "logistic"}}
    return cfg


@pytest.fixture(scope="session")
def make_text_config():
    return text_config


@pytest.fixture(scope="session")
def make_vector_config():
    return vector_config
