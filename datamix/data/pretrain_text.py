"""The ``pretrain_text`` scenario: unlabelled text harvested from this Python installation.

Docstrings, standard-library code and language-reference paragraphs as sources for a byte-level
language model, a deliberately low-quality web-like source made from them (shuffled lines or
words, repeated lines, navigation / cookie / licence boilerplate, exact and near duplicates), and
a held-out target of documentation; see :func:`pretrain_text`.
"""

from __future__ import annotations

import ast
import codecs
import functools
import os
import re
import sys
import zlib
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from datamix.data.scenario import Scenario, reveal
from datamix.data.sources import Source

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
    return Scenario("pretrain_text", reveal(sources, revealed, np.random.default_rng(seed)), target,
                    "unlabelled standard-library text for a byte-level LM: docstrings, source code, language "
                    "reference, noisy web-style copies (shuffled, boilerplate, duplicates); target = held-out "
                    "docstrings and reference paragraphs")
