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

import ast
import codecs
import functools
import importlib
import inspect
import os
import re
import sys
import zlib
from dataclasses import dataclass
from typing import Iterator

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


def _reveal(sources: list[Source], revealed: float | None, rng: np.random.Generator) -> list[Source]:
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
    return Scenario("digits", _reveal(sources, revealed, rng), target,
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
    return Scenario("pydocs", _reveal(sources, revealed, rng), target_src,
                    "Python standard-library docstrings labelled by module kind: clean, 40% label "
                    "noise, off-target language-reference paragraphs, templated near-duplicates; "
                    "target = held-out 30% of the docstrings")


# -- pretrain_text: unlabelled real text for a byte-level language model -------------------------
_MIN_BYTES, _PACK_BYTES, _MAX_BYTES = 100, 1500, 2000  # document length bounds, in UTF-8 bytes
_NGRAM = 13  # a source document sharing one 13-word run with a target document counts as a leak
_WORD_RE = re.compile(r"\w+")
_SOURCE_BYTES = {"docs": 300_000, "code": 300_000, "reference": 200_000, "web_noisy": 300_000}
_TARGET_BYTES = {"docs": 120_000, "reference": 60_000}
_PRICES = {"docs": 1.0, "code": 0.4, "reference": 0.5, "web_noisy": 0.1}
_SKIP_MODULES = {"this", "antigravity"}  # rot13 text and a joke, not documentation
NOISY_KINDS = ("clean", "shuffled_lines", "shuffled_words", "repeated_lines", "boilerplate", "duplicate",
               "near_duplicate")
_NOISY_SHARES = (0.30, 0.12, 0.10, 0.10, 0.14, 0.14, 0.10)
_SITES = ("pydocs-mirror.example.com", "learn-python.example.org", "codehelp.example.net",
          "devref.example.io", "tutorialhub.example.com")
_NAV = ("Home » Library Reference » {module} » {name}",
        "Skip to main content | Docs | Tutorials | Downloads | Community | Sign in",
        "You are here: {site} / python / {module} / {name}",
        "Menu ☰   Search {site} ...   Go",
        "Previous topic: {other} | Next topic: {name} | This page: Show source")
_COOKIE = ("This website uses cookies to improve your experience. By continuing to browse {site} you "
           "agree to our use of cookies. Accept all | Reject | Manage preferences",
           "We value your privacy. {site} and its partners store and access information on your device "
           "for personalised ads and content. Click Accept to continue.",
           "Notice: this page mirrors the documentation of {module}. Some content may be out of date. "
           "Last synced {date}.")
_RELATED = ("Related articles: {other} | {name} | {module} tutorial | {module} examples | {module} cheat sheet",
            "People also searched for: {module} example, {name} python, {other} vs {name}, python {module}",
            "Share this page: Twitter  Facebook  LinkedIn  Reddit  Email  Print",
            "Was this page helpful? Yes  No  | Report a problem with this page",
            "Tags: python, {module}, {name}, standard library, programming, tutorial",
            "Subscribe to our newsletter to get the latest {module} tips in your inbox. Enter your email  Subscribe")
_FOOTER = ("© {year} {site}. All rights reserved. Python is a trademark of the Python Software Foundation.",
           "Copyright {year}, Python Software Foundation. Last updated on {date}. Found a bug?",
           "Privacy policy | Terms of use | Contact | Sitemap | © {year} {site}")
_LICENCE_FALLBACK = ("PSF LICENSE AGREEMENT FOR PYTHON. This LICENSE AGREEMENT is between the Python Software "
                     "Foundation (\"PSF\"), and the Individual or Organization (\"Licensee\") accessing and "
                     "otherwise using this software (\"Python\") in source or binary form and its associated "
                     "documentation.")


@dataclass(frozen=True)
class _StdlibTexts:
    """Documents harvested from the Python installation (see :func:`_stdlib_texts`)."""

    docs: tuple
    code: tuple
    reference: tuple
    names: tuple
    licence: tuple
    zen: tuple


def _cut(text: str, limit: int, seps: tuple = ("\n\n", "\n")) -> list[str]:
    """``text`` in pieces of at most ``limit`` bytes, cut at paragraphs, then lines, then bytes."""
    if len(text.encode()) <= limit:
        return [text]
    if not seps:
        raw = text.encode()
        return [raw[i:i + limit].decode("utf-8", "ignore") for i in range(0, len(raw), limit)]
    return _pack(text.split(seps[0]), seps[0], limit, limit, seps[1:])


def _pack(blocks, sep: str, target: int, limit: int = _MAX_BYTES, seps: tuple = ("\n\n", "\n")) -> list[str]:
    """Join consecutive ``blocks`` with ``sep`` into pieces of at most ``target`` bytes; a block of up to
    ``limit`` bytes stays whole, a longer one is first cut by :func:`_cut`."""
    out, cur, size = [], [], 0
    for block in blocks:
        for piece in _cut(block, limit, seps):
            n = len(piece.encode())
            if cur and size + len(sep) + n > target:
                out.append(sep.join(cur))
                cur, size = [], 0
            size += n + (len(sep) if cur else 0)
            cur.append(piece)
    if cur:
        out.append(sep.join(cur))
    return out


def _documents(blocks, sep: str) -> list[str]:
    """Blocks packed into documents of ``_MIN_BYTES`` to ``_MAX_BYTES`` bytes; shorter ones are dropped."""
    docs = (d.strip("\n").rstrip() for d in _pack(blocks, sep, _PACK_BYTES))
    return [d for d in docs if len(d.encode()) >= _MIN_BYTES]


def _doc_entries(node, prefix: str) -> Iterator[str]:
    """pydoc-style ``header\\ndocstring`` of the public classes, functions and methods under ``node``."""
    for child in node.body:
        if not isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) or child.name.startswith("_"):
            continue
        name = f"{prefix}.{child.name}"
        if isinstance(child, ast.ClassDef):
            bases = ", ".join(ast.unparse(b) for b in child.bases)
            head = f"class {name}" + (f"({bases})" if bases else "")
        else:
            head = f"{name}({ast.unparse(child.args)})"
        if doc := ast.get_docstring(child):
            yield f"{head}\n{doc}"
        if isinstance(child, ast.ClassDef):
            yield from _doc_entries(child, name)


@functools.lru_cache(maxsize=1)
def _stdlib_texts() -> _StdlibTexts:
    """Parse (never import) the top-level standard-library modules once per process: docstring and
    source documents, module by module in file-name order, plus the language reference's paragraphs,
    public names, licence paragraphs and the Zen of Python for the boilerplate."""
    import pydoc_data.topics

    stdlib = os.path.dirname(os.__file__)
    docs, code, names, zen = [], [], [], ()
    for fname in sorted(os.listdir(stdlib)):
        module, ext = os.path.splitext(fname)
        if ext != ".py":
            continue
        try:
            with open(os.path.join(stdlib, fname), encoding="utf-8") as fh:
                src = fh.read()
            tree = ast.parse(src)
        except (OSError, SyntaxError, UnicodeDecodeError, ValueError):  # an odd install: skip the file
            continue
        if module == "this":  # the Zen of Python, rot13-encoded in ``s``
            for node in tree.body:
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                        and [ast.unparse(t) for t in node.targets] == ["s"]:
                    zen = tuple(line for line in codecs.decode(node.value.value, "rot13").splitlines()[2:] if line)
        if module in _SKIP_MODULES:
            continue
        head = [f"module {module}\n{doc}"] if (doc := ast.get_docstring(tree)) else []
        docs += _documents(head + list(_doc_entries(tree, module)), "\n\n")
        lines = src.splitlines(keepends=True)
        defs = [n for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
        starts = [min([n.lineno] + [d.lineno for d in n.decorator_list]) for n in defs]
        code += _documents(["".join(lines[s - 1:n.end_lineno]) for s, n in zip(starts, defs)], "\n\n")
        if not module.startswith("_"):
            names += [f"{module}.{n.name}" for n in defs if not n.name.startswith("_")]
    reference = []
    for key in sorted(pydoc_data.topics.topics):
        paragraphs = [p.strip("\n").rstrip() for p in pydoc_data.topics.topics[key].split("\n\n")]
        reference += _documents([p for p in paragraphs if p.strip()], "\n\n")
    licence_path = os.path.join(stdlib, "LICENSE.txt")
    try:
        with open(licence_path, encoding="utf-8") as fh:
            licence = [" ".join(p.split()) for p in fh.read().split("\n\n")]
    except OSError:  # some distributions leave it out
        licence = [_LICENCE_FALLBACK, " ".join(sys.copyright.split())]
    if not docs or not code or not reference:
        raise ValueError(f"bundled scenario 'pretrain_text' needs the standard library's .py sources; none "
                         f"usable were found in {stdlib}")
    # Topics of the reference share whole sections (``try`` and ``exceptions``): keep each text once.
    return _StdlibTexts(*(tuple(dict.fromkeys(t)) for t in (docs, code, reference)), tuple(names),
                        tuple(p[:600] for p in licence if len(p) >= 80), zen)


def _stream(seed: int, name: str) -> np.random.Generator:
    """A random stream that depends only on (seed, name), so each part of a scenario draws on its own."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])


def _words(text: str) -> list[str]:
    """Lower-case runs of letters and digits, so punctuation glued to a word (code's quotes) hides nothing."""
    return _WORD_RE.findall(text.lower())


def _ngrams(text: str) -> set:
    words = _words(text)
    return {tuple(words[i:i + _NGRAM]) for i in range(max(1, len(words) - _NGRAM + 1))}


def _leaks(text: str, grams: set) -> bool:
    words = _words(text)
    return any(tuple(words[i:i + _NGRAM]) in grams for i in range(max(1, len(words) - _NGRAM + 1)))


def _take(texts: tuple, order, budget: float, grams: set | None = None) -> list[str]:
    """Texts in ``order`` until ``budget`` bytes, skipping those that share a 13-word run with ``grams``."""
    out, total = [], 0
    for i in order:
        if total >= budget:
            break
        if grams is not None and _leaks(texts[i], grams):
            continue
        out.append(texts[i])
        total += len(texts[i].encode())
    return out


def _cycle(texts: tuple, order, grams: set) -> Iterator[str]:
    """The texts in ``order`` that do not leak, round and round."""
    kept = []
    for i in order:
        if not _leaks(texts[i], grams):
            kept.append(texts[i])
            yield texts[i]
    while kept:
        yield from kept


def _boilerplate(rng: np.random.Generator, texts: _StdlibTexts, bases: Iterator[str]) -> str:
    """A web page's chrome: navigation, cookie banner, a little content, related links, licence, footer."""
    def pick(seq):
        return seq[rng.integers(len(seq))]

    name = pick(texts.names)
    values = {"name": name, "module": name.split(".")[0], "other": pick(texts.names), "site": pick(_SITES),
              "year": int(rng.integers(2015, 2025)),
              "date": f"{rng.integers(2015, 2025)}-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}"}

    def fill(templates, low=1, high=1):
        chosen = rng.choice(len(templates), rng.integers(low, high + 1), replace=False)
        return [templates[i].format(**values) for i in chosen]

    lines = fill(_NAV, 1, 2) + (fill(_COOKIE) if rng.random() < 0.6 else [])
    if rng.random() < 0.5:  # a little real content among the chrome
        lines += next(bases).split("\n")[:rng.integers(1, 4)]
    lines += fill(_RELATED, 2, 4)
    if texts.zen and rng.random() < 0.3:
        lines.append(f"Quote of the day: “{pick(texts.zen)}”")
    if rng.random() < 0.7:
        lines.append(pick(texts.licence))
    return "\n".join(lines + fill(_FOOTER))


def _degrade(kind: str, text: str, rng: np.random.Generator) -> str:
    lines = text.split("\n")
    if kind == "shuffled_lines":
        return "\n".join(lines[i] for i in rng.permutation(len(lines)))
    if kind == "shuffled_words":
        return "\n".join(line[:len(line) - len(line.lstrip())] + " ".join(rng.permutation(line.split()).tolist())
                         for line in lines)
    if kind == "repeated_lines":
        full = [i for i, line in enumerate(lines) if line.strip()]
        spam = set(rng.choice(full, min(len(full), rng.integers(1, 4)), replace=False).tolist())
        out = [rep for i, line in enumerate(lines) for rep in [line] * (int(rng.integers(2, 6)) if i in spam else 1)]
        return _cut("\n".join(out), _MAX_BYTES, ("\n",))[0]
    return text  # "clean"


def _perturb(text: str, rng: np.random.Generator) -> str:
    """``text`` with 3-8 ASCII letters replaced by other letters."""
    chars = list(text)
    letters = [i for i, c in enumerate(chars) if c.isascii() and c.isalpha()]
    for i in rng.choice(letters, min(len(letters), rng.integers(3, 9)), replace=False):
        chars[i] = chr(ord("a") + (ord(chars[i].lower()) - ord("a") + int(rng.integers(1, 26))) % 26)
    return "".join(chars)


def _web_noisy(rng, texts: _StdlibTexts, docs: Iterator[str], reference: Iterator[str], budget: float,
               grams: set) -> tuple[list, list]:
    """(texts, quality) of the noisy source, made one document at a time until ``budget`` bytes."""
    out, kinds, total = [], [], 0
    while total < budget:
        kind = NOISY_KINDS[rng.choice(len(NOISY_KINDS), p=_NOISY_SHARES)]
        if kind in ("duplicate", "near_duplicate") and not out:
            kind = "clean"
        if kind == "duplicate":
            text = out[rng.integers(len(out))]
        elif kind == "near_duplicate":
            text = _perturb(out[rng.integers(len(out))], rng)
        elif kind == "boilerplate":
            text = _cut(_boilerplate(rng, texts, docs), _MAX_BYTES, ("\n",))[0]
        else:
            text = _degrade(kind, next(docs if rng.random() < 0.6 else reference), rng)
        if len(text.encode()) < _MIN_BYTES or _leaks(text, grams):
            continue
        out.append(text)
        kinds.append(kind)
        total += len(text.encode())
    return out, kinds


def _plain_source(name: str, texts: list[str], price: float | None, **columns) -> Source:
    import datasets

    ds = datasets.Dataset.from_dict({"text": texts, "id": [f"{name}-{i:05d}" for i in range(len(texts))],
                                     **columns})
    return Source(name=name, dataset=ds, field="text", kind="text", label_field=None, id_field="id",
                  price=price, origin="bundled:pretrain_text")


def pretrain_text(*, seed: int = 0, revealed: float | None = None, size: float = 1.0,
                  target_size: float = 1.0) -> Scenario:
    """Unlabelled standard-library text for a byte-level LM: docs, code, reference, web_noisy sources.

    Parameters
    ----------
    seed : int, default=0
        Picks the target's documents, each source's documents and the noisy source's corruptions.
    revealed : float or None, default=None
        Keep that share of each source, as a seller's sample of the offer.
    size : float, default=1.0
        Factor on every source's default byte budget (docs 300 KB, code 300 KB, reference 200 KB,
        web_noisy 300 KB). A source stops at the first document past its budget. Reference and docs
        run out near ``size=1.7`` and ``2.2`` (355 and 655 KB on Python 3.11), code near 13; past
        about 1.5 ``web_noisy`` shares clean text with them, past about 3 its clean text repeats. A
        smaller ``size`` gives a prefix of the larger one's rows under the same seed.
    target_size : float, default=1.0
        Factor on the target's byte budget (120 KB of docstrings and 60 KB of reference paragraphs).
        ``size`` does not change the target, nor ``target_size`` the sources' budgets.

    Returns
    -------
    Scenario
        Sources ``docs``, ``code``, ``reference``, ``web_noisy``; every document is 100-2,000 UTF-8
        bytes, in column ``text`` with ids ``"<source>-00042"`` in ``id`` and no label. ``web_noisy``
        also has a ``quality`` column (one of ``NOISY_KINDS``): how the row was made, for tests and
        benchmarks, never a label.

    Notes
    -----
    Docstring documents are pydoc-style (``module.func(args)`` then the docstring), packed module by
    module to about 1,500 bytes; code documents are top-level functions and classes, cut at blank
    lines when longer than 2,000 bytes; reference documents are consecutive paragraphs of one topic
    of ``pydoc_data.topics``. The target holds whole documents of the docs and reference pools; a
    source document sharing a run of 13 words with any target document is left out (this drops the
    code of the held-out docstrings' functions too). ``web_noisy`` draws its clean text from the far
    end of the same pools, so at the default sizes it repeats nothing of ``docs`` or ``reference``.
    The text comes from the installation's ``.py`` files (parsed, never imported), so it depends on
    the Python version; the harvest is cached per process.
    """
    for key, value in (("size", size), ("target_size", target_size)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (np.isfinite(value) and value > 0):
            raise ValueError(f"{key}={value!r} must be a positive number: the factor on the default byte budgets")
    texts = _stdlib_texts()
    docs_order = _stream(seed, "docs").permutation(len(texts.docs))
    ref_order = _stream(seed, "reference").permutation(len(texts.reference))
    held_docs = _take(texts.docs, docs_order, _TARGET_BYTES["docs"] * target_size)
    held_ref = _take(texts.reference, ref_order, _TARGET_BYTES["reference"] * target_size)
    grams = set().union(*map(_ngrams, held_docs + held_ref))
    docs_rest, ref_rest = docs_order[len(held_docs):], ref_order[len(held_ref):]
    budget = {k: v * size for k, v in _SOURCE_BYTES.items()}
    noisy, quality = _web_noisy(_stream(seed, "web_noisy"), texts, _cycle(texts.docs, docs_rest[::-1], grams),
                                _cycle(texts.reference, ref_rest[::-1], grams), budget["web_noisy"], grams)
    code_order = _stream(seed, "code").permutation(len(texts.code))
    sources = [
        _plain_source("docs", _take(texts.docs, docs_rest, budget["docs"], grams), _PRICES["docs"]),
        _plain_source("code", _take(texts.code, code_order, budget["code"], grams), _PRICES["code"]),
        _plain_source("reference", _take(texts.reference, ref_rest, budget["reference"], grams),
                      _PRICES["reference"]),
        _plain_source("web_noisy", noisy, _PRICES["web_noisy"], quality=quality),
    ]
    target = _plain_source("target", held_docs + held_ref, None)
    return Scenario("pretrain_text", _reveal(sources, revealed, np.random.default_rng(seed)), target,
                    "unlabelled standard-library text for a byte-level LM: docstrings, source code, language "
                    "reference, noisy web-style copies (shuffled, boilerplate, duplicates); target = held-out "
                    "docstrings and reference paragraphs")


SCENARIOS = {"digits": digits, "pydocs": pydocs, "pretrain_text": pretrain_text}


def load_scenario(name: str, **options) -> Scenario:
    """Build the bundled scenario ``name`` (one of ``SCENARIOS``) with ``options`` (seed, revealed, and
    the scenario's own, such as ``size`` for ``pretrain_text``)."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown bundled scenario {name!r}; choose one of {sorted(SCENARIOS)}")
    return SCENARIOS[name](**options)
