"""Built-in demo scenarios that need no network: candidate sources plus a held-out target set.

``digits``
    scikit-learn's 1,797 handwritten digits (8x8 pixels, 10 classes) as 64-d vectors, augmented by
    one-pixel shifts and split into five realistic sources: clean, label-noisy (40% of labels
    wrong), corrupted (30% of pixels replaced by noise), near-duplicated (150 images, each ten times
    with faint noise) and class-skewed (80% from classes 0-2). The target set is a stratified 30% of
    the original images, kept out of every source (their shifts too).
``pydocs``
    Real English text from this Python installation (PSF-licensed): docstrings of the standard
    library, labelled by the kind of module they come from (text, numeric, files, concurrency,
    network, data). Sources: clean docstrings, the same kind with 40% wrong labels, paragraphs of
    the language reference (an off-target domain, label "language") and templated near-duplicates.
    The target set is a held-out 30% of the clean docstrings. Contents depend on the Python version.
``pretrain_text``
    Unlabelled real text from this Python installation, for pretraining a small byte-level language
    model whose metric is the target's bits per byte. Documents of 100-2,000 UTF-8 bytes (texts cut at
    paragraph or definition boundaries, short neighbours packed together). Sources: ``docs``
    (pydoc-style docstrings of the standard library's modules, classes and functions), ``code``
    (standard-library source, top-level functions and classes), ``reference`` (paragraphs of the
    language reference in ``pydoc_data.topics``) and ``web_noisy`` (30% clean docstrings and reference
    paragraphs, the rest lines or words shuffled, lines repeated, navigation/cookie/licence-footer
    boilerplate, exact and near duplicates; a ``quality`` column says which). About 300, 300, 200 and
    300 KB by default, scaled by ``size``. The target (about 180 KB, scaled by ``target_size``) is
    held-out docstring (2/3) and reference (1/3) documents; no source document shares a 13-word run
    with it. Contents depend on the Python version.

Every scenario is deterministic given its seed.
"""

from __future__ import annotations

import codecs
import functools
import importlib
import inspect
import os
import re

import numpy as np

from datamix.data.pretrain_text import NOISY_KINDS, pretrain_text
from datamix.data.scenario import Scenario, reveal
from datamix.data.sources import Source

__all__ = ["NOISY_KINDS", "SCENARIOS", "Scenario", "digits", "load_scenario", "pretrain_text", "pydocs",
           "stdlib_docstrings"]


def _vector_source(name: str, X: np.ndarray, y: np.ndarray, price: float | None, origin: str) -> Source:
    import datasets

    ds = datasets.Dataset.from_dict({"pixels": X.astype(np.float32), "label": y.astype(np.int64),
                                     "id": [f"{name}-{i:05d}" for i in range(len(X))]})
    return Source(name=name, dataset=ds, field="pixels", kind="vector", label_field="label",
                  id_field="id", price=price, origin=origin)


def _shifts(images: np.ndarray) -> np.ndarray:
    """The images and their four one-pixel shifts, shape (5, n, 8, 8); vacated pixels are 0."""
    out = [images]
    for axis in (1, 2):
        for step in (-1, 1):
            moved = np.roll(images, step, axis=axis)
            edge = [slice(None)] * 3
            edge[axis] = 0 if step == 1 else -1
            moved[tuple(edge)] = 0
            out.append(moved)
    return np.stack(out)


def digits(*, seed: int = 0, revealed: float | None = None) -> Scenario:
    """Handwritten digits as 64-d vectors in five sources (clean, noisy labels, corrupted, near-dup, skewed).

    ``revealed`` keeps that share of each source, as a seller's sample of the offer.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    rng = np.random.default_rng(seed)
    data = load_digits()
    images, y = data.images / 16.0, data.target
    pool_idx, target_idx = train_test_split(np.arange(len(y)), test_size=0.3, stratify=y, random_state=seed)
    variants = _shifts(images[pool_idx]).reshape(-1, 64)  # row v*n + i: shift v of pool image i
    labels = np.tile(y[pool_idx], 5)
    order = rng.permutation(len(variants))
    take = iter(np.split(order, np.cumsum([1000, 1500, 1500, 150])))
    origin = "bundled:digits"

    clean = next(take)
    noisy = next(take)
    noisy_y = labels[noisy].copy()
    flip = rng.random(len(noisy)) < 0.4
    noisy_y[flip] = (noisy_y[flip] + rng.integers(1, 10, flip.sum())) % 10
    corrupt = next(take)
    Xc = variants[corrupt].copy()
    mask = rng.random(Xc.shape) < 0.3
    Xc[mask] = rng.random(mask.sum())
    base = next(take)
    dup_idx = np.repeat(base, 10)
    Xd = np.clip(variants[dup_idx] + rng.normal(0, 0.01, (len(dup_idx), 64)), 0, 1)
    rest = next(take)
    weight = np.where(labels[rest] <= 2, 0.8 / 3, 0.2 / 7)
    weight = weight / np.bincount(labels[rest], minlength=10)[labels[rest]]
    skew = rng.choice(rest, 1000, replace=False, p=weight / weight.sum())

    sources = [
        _vector_source("clean", variants[clean], labels[clean], 1.0, origin),
        _vector_source("noisy_labels", variants[noisy], noisy_y, 0.2, origin),
        _vector_source("corrupted", Xc, labels[corrupt], 0.3, origin),
        _vector_source("near_dup", Xd, labels[dup_idx], 0.1, origin),
        _vector_source("skewed", variants[skew], labels[skew], 0.5, origin),
    ]
    target = _vector_source("target", images[target_idx].reshape(-1, 64), y[target_idx], None, origin)
    return Scenario("digits", reveal(sources, revealed, rng), target,
                    "sklearn digits as 64-d vectors: clean, 40% label noise, 30% corrupted pixels, "
                    "near-duplicates, class-skewed; target = held-out 30% of the originals")


PYDOC_MODULES = {
    "text": ["string", "re", "textwrap", "difflib", "unicodedata", "codecs", "html", "html.parser", "csv",
             "gettext", "locale"],
    "numeric": ["math", "cmath", "decimal", "fractions", "random", "statistics", "numbers", "operator"],
    "files": ["os", "posixpath", "shutil", "pathlib", "glob", "fnmatch", "tempfile", "io", "zipfile",
              "tarfile", "gzip", "filecmp", "stat"],
    "concurrency": ["threading", "multiprocessing", "concurrent.futures", "asyncio", "queue", "sched",
                    "subprocess", "signal", "selectors"],
    "network": ["socket", "ssl", "http.client", "http.server", "urllib.request", "urllib.parse",
                "email.message", "smtplib", "ftplib", "ipaddress", "xmlrpc.client"],
    "data": ["collections", "heapq", "bisect", "array", "dataclasses", "enum", "itertools", "functools",
             "copy", "pprint", "json", "pickle", "sqlite3", "struct"],
}


def _first_paragraph(obj) -> str | None:
    doc = inspect.getdoc(obj)
    if not doc:
        return None
    text = " ".join(doc.split("\n\n")[0].split())
    return text[:500] if len(text) >= 40 else None


def stdlib_docstrings() -> tuple[list[str], list[str]]:
    """(texts, categories) of the standard library's docstrings, sorted; texts found under two
    categories are left out."""
    found: dict[str, set] = {}
    for category, modules in PYDOC_MODULES.items():
        for modname in modules:
            try:
                mod = importlib.import_module(modname)
            except ImportError:  # a Python built without this module
                continue
            for name, obj in inspect.getmembers(mod):
                if name.startswith("_") or inspect.ismodule(obj):
                    continue
                members = [obj]
                if inspect.isclass(obj) and obj.__module__ == mod.__name__:
                    members += [m for n, m in vars(obj).items() if not n.startswith("_") and callable(m)]
                for m in members:
                    if (text := _first_paragraph(m)) is not None:
                        found.setdefault(text, set()).add(category)
    pairs = sorted((t, c.pop()) for t, c in found.items() if len(c) == 1)
    return [t for t, _ in pairs], [c for _, c in pairs]


def _text_source(name: str, texts: list[str], labels: list[str], price: float | None) -> Source:
    import datasets

    ds = datasets.Dataset.from_dict({"text": list(texts), "label": list(labels),
                                     "id": [f"{name}-{i:05d}" for i in range(len(texts))]})
    return Source(name=name, dataset=ds, field="text", kind="text", label_field="label", id_field="id",
                  price=price, origin="bundled:pydocs")


def pydocs(*, seed: int = 0, revealed: float | None = None) -> Scenario:
    """Real text: standard-library docstrings by module kind, in four sources (see the module docstring)."""
    import pydoc_data.topics

    rng = np.random.default_rng(seed)
    texts, cats = stdlib_docstrings()
    texts, cats = np.array(texts, dtype=object), np.array(cats)
    order = rng.permutation(len(texts))
    n_target = int(0.3 * len(texts))
    target, pool = order[:n_target], order[n_target:]
    half = len(pool) // 2
    clean, noisy = pool[:half], pool[half:]
    names = sorted(PYDOC_MODULES)
    noisy_y = cats[noisy].copy()
    flip = rng.random(len(noisy)) < 0.4
    noisy_y[flip] = [names[(names.index(c) + rng.integers(1, len(names))) % len(names)] for c in noisy_y[flip]]
    paragraphs = sorted({" ".join(p.split()) for v in pydoc_data.topics.topics.values()
                         for p in v.split("\n\n") if len(p) >= 80})
    ref = rng.choice(len(paragraphs), min(600, len(paragraphs)), replace=False)
    base = rng.choice(clean, 60, replace=False)
    templates = ["{}", "Note: {}", "{} (see the documentation)", "Summary: {}", "{} This is a wrapper."]
    dups = [t.format(texts[i]) for i in base for t in templates]
    sources = [
        _text_source("stdlib", texts[clean], cats[clean], 1.0),
        _text_source("stdlib_noisy", texts[noisy], noisy_y, 0.3),
        _text_source("reference", [paragraphs[i][:500] for i in ref], ["language"] * len(ref), 0.5),
        _text_source("boilerplate", dups, np.repeat(cats[base], len(templates)), 0.1),
    ]
    target_src = _text_source("target", texts[target], cats[target], None)
    return Scenario("pydocs", reveal(sources, revealed, rng), target_src,
                    "Python standard-library docstrings labelled by module kind: clean, 40% label "
                    "noise, off-target language-reference paragraphs, templated near-duplicates; "
                    "target = held-out 30% of the docstrings")


SCENARIOS = {"digits": digits, "pydocs": pydocs, "pretrain_text": pretrain_text}


def load_scenario(name: str, **options) -> Scenario:
    """Build the bundled scenario ``name`` (one of ``SCENARIOS``) with ``options`` (seed, revealed, and
    the scenario's own, such as ``size`` for ``pretrain_text``)."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown bundled scenario {name!r}; choose one of {sorted(SCENARIOS)}")
    return SCENARIOS[name](**options)
