"""Bad input, through the CLI as a user meets it: every case exits 2 with a one-line message naming
the file, key or value, never a traceback, and writes nothing — ``datamix info CONFIG`` refuses it
with the same message before ``datamix run`` is even tried."""

import copy
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import yaml

from datamix.cli import main

DELETE = object()
TINY_LM = {"model": "lm", "width": 16, "depth": 1, "heads": 2, "context": 32, "batch_size": 4}


def _set(cfg: dict, dotted: str, value) -> None:
    keys = [int(k) if k.isdigit() else k for k in dotted.split(".")]
    node = cfg
    for k in keys[:-1]:
        if isinstance(k, str) and k not in node:
            node[k] = {}
        node = node[k]
    if value is DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value


# (case id, base config, {dotted key: value}, message regex)
T, V, P, E = "text", "vector", "purchase", "prune_eval"
CONFIG_CASES = [
    # run settings
    ("seed negative", T, {"seed": -1}, r"seed: Input should be greater than or equal to 0 \(got -1\)"),
    ("seed too big", T, {"seed": 2**32}, r"seed: Input should be less than 4294967296"),
    ("seed float", T, {"seed": 1.5}, r"seed: Input should be a valid integer"),
    ("seed text", T, {"seed": "abc"}, r"seed: Input should be a valid integer"),
    ("name with slash", T, {"name": "a/b"}, r"name: invalid run name 'a/b'"),
    ("name dot dot", T, {"name": ".."}, r"name: invalid run name '..'"),
    ("name empty", T, {"name": ""}, r"name: invalid run name ''"),
    ("name windows device", T, {"name": "CON"}, r"name: invalid run name 'CON': CON is a device name on Windows"),
    ("name trailing dot", T, {"name": "run."}, r"invalid run name 'run.': a name ending with '.'"),
    ("name with space", T, {"name": "my run"}, r"invalid run name 'my run'"),
    ("pipeline unknown", T, {"pipeline": "train"},
     r"pipeline: Input should be 'curate', 'purchase', 'prune_eval' or 'runs'"),
    ("unknown top key", T, {"budget": 3}, r"unknown key 'budget'; allowed keys here: curate, data, embed, engine"),
    ("unknown curate key", T, {"curate.token": 10}, r"unknown key 'curate.token'; allowed keys here: .*tokens"),
    ("unknown embed key", T, {"embed.modle": "x"}, r"unknown key 'embed.modle'; allowed keys here: batch_size"),
    ("unknown source key", T, {"data.sources.0.lable": "x"}, r"unknown key 'data.sources.0.lable'; allowed keys"),
    ("unknown data key", T, {"data.source": []}, r"unknown key 'data.source'"),
    ("unknown engine key", T, {"engine": {"name": "local", "workers": 2}}, r"unknown key 'engine.workers'"),
    ("unknown engine", T, {"engine": "spark"}, r"engine.name: Input should be 'local' or 'ray'"),
    ("local engine with address", T, {"engine": {"name": "local", "address": "auto"}},
     r"'address' and 'num_cpus' apply to engine 'ray' only"),
    ("engine resources negative", T, {"engine": {"name": "local", "resources": {"embed": {"num_cpus": 0}}}},
     r"engine.resources.embed.num_cpus: Input should be greater than 0"),
    # embed
    ("embed device tpu", T, {"embed.device": "tpu"}, r"embed.device: device 'tpu': use 'auto', 'cpu', 'cuda'"),
    ("embed device cuda text", T, {"embed.device": "cuda:x"}, r"device 'cuda:x'"),
    ("embed batch zero", T, {"embed.batch_size": 0}, r"embed.batch_size: Input should be greater than or equal to 1"),
    ("embed shard zero", T, {"embed.shard_size": 0}, r"embed.shard_size: Input should be greater than or equal to 1"),
    ("embed model not local offline", T, {"embed.model": "someone/some-model"},
     r"embed.model: 'someone/some-model' is not a local folder nor in the Hugging Face cache, and the hub is off"),
    ("embed model path missing", T, {"embed.model": "./no/such/model"},
     r"embed.model: './no/such/model' is not a folder on this machine"),
    ("embed model absolute missing", T, {"embed.model": "/no/such/model"}, r"'/no/such/model' is not a folder"),
    ("trust remote code not bool", T, {"embed.trust_remote_code": "yes please"},
     r"embed.trust_remote_code: Input should be a valid boolean"),
    # data section
    ("no data", T, {"data": DELETE}, r"pipeline 'curate' needs a 'data:' section"),
    ("data empty", T, {"data": {}}, r"give 'bundled' \(a built-in scenario\) or a list of 'sources'"),
    ("bundled and sources", T, {"data.bundled": "digits"}, r"give 'bundled' or 'sources'/'target', not both"),
    ("bundled unknown", T, {"data": {"bundled": "imagenet"}}, r"data.bundled.*imagenet"),
    ("bundled bad option", T, {"data": {"bundled": "digits", "options": {"sizee": 3}}}, r"data.options"),
    ("options without bundled", T, {"data.options": {"size": 1}}, r"'options' apply to a bundled scenario only"),
    ("source without path or hub", T, {"data.sources.0.path": DELETE}, r"give exactly one of 'path'"),
    ("source with path and hub", T, {"data.sources.0.hub": "org/ds"}, r"give exactly one of 'path'"),
    ("source name missing", T, {"data.sources.0.name": DELETE}, r"data.sources.0.name: Field required"),
    ("source name slash", T, {"data.sources.0.name": "../web"}, r"invalid source name '../web'"),
    ("source name reserved", T, {"data.sources.0.name": "manifest.json"}, r"source name 'manifest.json' is reserved"),
    ("source name device", T, {"data.sources.0.name": "nul"}, r"nul is a device name on Windows"),
    ("source names clash", T, {"data.sources.1.name": "web"}, r"source names must be unique"),
    ("source names clash by case", T, {"data.sources.1.name": "WEB"}, r"unique, also ignoring case"),
    ("target name clash", T, {"data.target.name": "books"}, r"source names must be unique"),
    ("source kind unknown", T, {"data.sources.0.kind": "audio"}, r"data.sources.0.kind: Input should be"),
    ("source format unknown", T, {"data.sources.0.format": "xlsx"}, r"data.sources.0.format: Input should be"),
    ("source price negative", T, {"data.sources.0.price": -1}, r"data.sources.0.price: Input should be greater"),
    ("source offer size zero", T, {"data.sources.0.offer_size": 0}, r"data.sources.0.offer_size: Input should be"),
    ("owned with price", T, {"data.sources.0.owned": True, "data.sources.0.price": 2},
     r"owned: true with price 2.0: owned data costs nothing"),
    ("owned with offer size", T, {"data.sources.0.owned": True, "data.sources.0.offer_size": 9},
     r"owned: true with offer_size"),
    ("sources not a list", T, {"data.sources": {"name": "web"}}, r"data.sources: Input should be a valid list"),
    ("source file missing", T, {"data.sources.0.path": "/no/such/web.jsonl"},
     r"source 'web': file not found: /no/such/web.jsonl"),
    ("target file missing", T, {"data.target.path": "nope.jsonl"}, r"source 'target': file not found: .*nope.jsonl"),
    ("source is a folder", T, {"data.sources.0.path": "@dir"}, r"source 'web'"),
    ("hub source offline", T, {"data.sources.0.path": DELETE, "data.sources.0.hub": "someone/dataset"},
     r"data.sources\[0\].hub \(web\): 'someone/dataset' is not a local folder nor in the Hugging Face cache"),
    ("text field missing", T, {"data.sources.0.field": "body"}, r"source 'web'.*'body'"),
    ("label field missing", V, {"data.sources.0.label": "class"}, r"source 'web'.*'class'"),
    ("id field missing", T, {"data.sources.0.id": "doc_id"}, r"source 'web'.*'doc_id'"),
    ("no target for curate", T, {"data.target": DELETE}, r"the curate pipeline needs a target set"),
    # curate settings
    ("tokens negative", T, {"curate.tokens": -5}, r"curate.tokens: Input should be greater than 0"),
    ("tokens zero", T, {"curate.tokens": 0}, r"curate.tokens: Input should be greater than 0"),
    ("tokens nan", T, {"curate.tokens": float("nan")}, r"curate.tokens: Input should be a finite number"),
    ("tokens inf", T, {"curate.tokens": float("inf")}, r"curate.tokens: Input should be a finite number"),
    ("tokens text", T, {"curate.tokens": "lots"}, r"curate.tokens: Input should be a valid number"),
    ("tokens past any horizon", T, {"curate.tokens": 1e10},
     r"curate.tokens = 1e\+10 tokens .* epochs over all \d+ unique tokens .*more than 1000"),
    ("frontier past any horizon", T, {"curate.tokens": 2e5, "curate.frontier": [1, 500]}, r"x500 at the top"),
    ("passes one value", T, {"curate.passes": [1.0]}, r"curate.passes: List should have at least 2 items"),
    ("passes zero", T, {"curate.passes": [0, 1]}, r"curate.passes: .*must be positive numbers"),
    ("passes negative", T, {"curate.passes": [-1, 1]}, r"curate.passes: .*must be positive numbers"),
    ("passes huge", T, {"curate.passes": [1, 1e9]}, r"curate.passes: .*up to 1000"),
    ("passes below one batch", T, {"curate.passes": [0.0001, 1.0]}, r"below one batch"),
    ("frontier empty", T, {"curate.frontier": []}, r"curate.frontier: List should have at least 1 item"),
    ("frontier zero", T, {"curate.frontier": [0]}, r"curate.frontier: .*must be positive numbers"),
    ("buckets zero", T, {"curate.buckets": 0}, r"curate.buckets: Input should be greater than or equal to 1"),
    ("buckets too many", T, {"curate.buckets": 21}, r"curate.buckets: Input should be less than or equal to 20"),
    ("pool runs below one batch", V, {"curate.buckets": 20, "curate.passes": [1, 2], "curate.trainer": {
        "model": "mlp", "compute_bound": True, "batch_size": 32}},
     r"the smallest pool run \(2 samples seen: .*\) is below one batch of the proxy \(32 samples\)"),
    ("level one", T, {"curate.level": 1}, r"curate.level: Input should be less than 1"),
    ("level zero", T, {"curate.level": 0}, r"curate.level: Input should be greater than 0"),
    ("n_starts zero", T, {"curate.n_starts": 0}, r"curate.n_starts: Input should be greater than or equal to 1"),
    ("n_bootstrap one", T, {"curate.n_bootstrap": 1}, r"curate.n_bootstrap: Input should be greater"),
    ("seeds empty", T, {"curate.seeds": []}, r"curate.seeds: List should have at least 1 item"),
    ("seeds negative", T, {"curate.seeds": [-1]}, r"curate.seeds.0: Input should be greater than or equal to 0"),
    ("verify seeds negative", T, {"curate.verify_seeds": [0, -5]}, r"curate.verify_seeds.1: Input should be"),
    ("format csv", T, {"curate.format": "csv"}, r"curate.format: Input should be 'parquet' or 'jsonl'"),
    ("curated shard zero", T, {"curate.shard_size": 0}, r"curate.shard_size: Input should be greater"),
    ("pools unknown", T, {"curate.pools": "flat"}, r"curate.pools: Input should be 'nested' or 'buckets'"),
    ("max epochs zero", T, {"curate.max_epochs": 0}, r"curate.max_epochs: Input should be greater than 0"),
    ("money budget negative", T, {"curate.budget": -1}, r"curate.budget: Input should be greater than or equal"),
    ("dedup eps zero", T, {"curate.dedup_eps": 0}, r"curate.dedup_eps: Input should be greater than 0"),
    ("dedup eps two", T, {"curate.dedup_eps": 2}, r"curate.dedup_eps: Input should be less than 2"),
    ("floor cap negative", T, {"curate.floor_cap": -1}, r"curate.floor_cap: Input should be greater"),
    ("curate unknown source", T, {"curate.sources": ["web", "news"]}, r"curate.sources names unknown source\(s\) "
                                                                       r"\['news'\]"),
    ("curate repeated source", T, {"curate.sources": ["web", "web"]}, r"curate.sources repeats names"),
    ("filter unknown source", T, {"curate.filter": ["news"]}, r"curate.filter names unknown source\(s\) \['news'\]"),
    ("min ratio unknown source", T, {"curate.min_ratio": {"news": 0.1}}, r"curate.min_ratio names unknown source"),
    ("max ratio unknown source", T, {"curate.max_ratio": {"news": 0.5}}, r"curate.max_ratio names unknown source"),
    ("prices unknown source", T, {"curate.prices": {"news": 1}}, r"curate.prices names unknown source"),
    ("min ratios infeasible", T, {"curate.min_ratio": 0.7}, r"min_ratio"),
    ("max ratios infeasible", T, {"curate.max_ratio": 0.2}, r"max_ratio"),
    ("trainer unknown model", T, {"curate.trainer": {"model": "gpt"}}, r"curate.trainer: .*'gpt'"),
    ("trainer unknown option", T, {"curate.trainer": {"model": "lm", "widht": 8}}, r"curate.trainer: .*widht"),
    ("trainer width zero", T, {"curate.trainer.width": 0}, r"curate.trainer: .*width"),
    ("trainer lr negative", T, {"curate.trainer.lr": -0.1}, r"curate.trainer: .*lr"),
    ("trainer tokenizer missing", T, {"curate.trainer.tokenizer": "no/such/tokenizer.json"},
     r"curate.trainer: .*no/such/tokenizer.json"),
    ("trainer tokenizer not one", T, {"curate.trainer.tokenizer": "@bad_tokenizer"}, r"curate.trainer: .*tokenizer"),
    ("context above every document", T, {"curate.trainer.context": 100_000}, r"target set smaller than one context"),
    ("classifier on unlabelled text", T, {"curate.trainer": {"model": "logistic"}}, r"source 'web' has no labels"),
    ("lm on vectors", V, {"curate.trainer": dict(TINY_LM)}, r"source 'web' holds vector samples: curate.trainer 'lm'"),
    ("el2n on unlabelled text", T, {"curate.score": {"method": "el2n"}}, r"'el2n' needs labels"),
    ("importance with a classifier", V, {"curate.score": {"method": "importance"}}, r"'importance' scores text"),
    ("score column not given", T, {"curate.score": {"method": "column"}}, r"needs curate.score.column"),
    ("score column missing", T, {"curate.score": {"method": "column", "column": "quality"}},
     r"scores missing for source\(s\) \['web', 'books'\]: no column 'quality'"),
    ("score method unknown", T, {"curate.score": {"method": "perplexity"}}, r"curate.score.method: Input should be"),
    # purchase
    ("purchase without section", P, {"purchase": DELETE}, r"pipeline 'purchase' needs a 'purchase:' section"),
    ("purchase budget negative", P, {"purchase.budget": -3}, r"purchase.budget: Input should be greater"),
    ("purchase sizes zero", P, {"purchase.sizes": [0, 10]}, r"purchase.sizes: .*sizes must be positive integers"),
    ("purchase sizes above revealed", P, {"purchase.sizes": [10, 500]},
     r"purchase.sizes goes up to 500 but source\(s\) reveal fewer samples: web 40, books 40"),
    ("purchase unknown source", P, {"purchase.sources": ["web", "news"]}, r"purchase.sources names unknown"),
    ("purchase prices unknown", P, {"purchase.prices": {"news": 1}}, r"purchase.prices names source\(s\) \['news'\]"),
    ("purchase source without price", P, {"data.sources.1.price": DELETE}, r"sources \['books'\] have no price"),
    ("purchase unlabelled", P, {"data.sources.0.label": DELETE}, r"'web' has no labels: purchase predicts"),
    ("purchase unknown key", P, {"purchase.budgett": 1}, r"unknown key 'purchase.budgett'"),
    ("purchase seeds negative", P, {"purchase.seeds": [-2]}, r"purchase.seeds.0: Input should be greater"),
    ("purchase trainer unknown", P, {"purchase.trainer": {"model": "svm"}}, r"svm"),
    # prune_eval
    ("prune_eval fraction zero", E, {"prune_eval.fractions": [0, 0.5]}, r"prune_eval.fractions"),
    ("prune_eval fraction above one", E, {"prune_eval.fractions": [0.5, 1.5]}, r"prune_eval.fractions"),
    ("prune_eval seeds negative", E, {"prune_eval.seeds": [-1]}, r"prune_eval.seeds.0: Input should be greater"),
    ("prune_eval keep unknown", E, {"prune_eval.keeps": ["medium"]}, r"prune_eval.keeps.0: Input should be"),
    ("prune_eval unlabelled", E, {"data.sources.0.label": DELETE}, r"sources \['web'\] need a label field"),
    ("prune_eval no target", E, {"data.target": DELETE}, r"the prune_eval pipeline needs a target set"),
    ("prune_eval epochs zero", E, {"prune_eval.epochs": 0}, r"prune_eval.epochs: Input should be greater"),
    ("score metric unknown", E, {"score.metrics": ["loss"]}, r"score.metrics.0: Input should be"),
    ("score seeds negative", E, {"score.dynamics_seeds": [-1]}, r"score.dynamics_seeds.0: Input should be greater"),
]

# (case id, base config, {file name: content}, {dotted key: file name}, message regex)
FILE_CASES = [
    ("empty source file", T, {"e.jsonl": ""}, {"data.sources.0.path": "e.jsonl"}, r"source 'web'.*e.jsonl"),
    ("source file not json", T, {"e.jsonl": "this is { not json\n"}, {"data.sources.0.path": "e.jsonl"},
     r"source 'web'.*e.jsonl"),
    ("source file binary", T, {"e.jsonl": b"\x00\xff\xfe\x89PNG"}, {"data.sources.0.path": "e.jsonl"},
     r"source 'web'.*e.jsonl"),
    ("parquet that is not", T, {"e.parquet": "not parquet"}, {"data.sources.0.path": "e.parquet"},
     r"source 'web'.*e.parquet"),
    ("csv without the field", T, {"e.csv": "body\nhello\n"}, {"data.sources.0.path": "e.csv"}, r"source 'web'.*'text'"),
    ("unknown extension", T, {"e.txt": "hello"}, {"data.sources.0.path": "e.txt"}, r"source 'web'.*e.txt"),
    ("null texts", T, {"e.jsonl": '{"text": null}\n{"text": "a"}\n'}, {"data.sources.0.path": "e.jsonl"},
     r"source 'web'"),
    ("empty documents", T, {"e.jsonl": '{"text": ""}\n' * 30}, {"data.sources.0.path": "e.jsonl"}, r"source 'web'"),
    ("numbers as text", T, {"e.jsonl": '{"text": 5}\n' * 30}, {"data.sources.0.path": "e.jsonl"}, r"source 'web'"),
    ("null labels", V, {"e.jsonl": '{"x": [1, 2, 3, 4], "label": null}\n' * 30}, {"data.sources.0.path": "e.jsonl"},
     r"source 'web'.*label"),
    ("vector of text", V, {"e.jsonl": '{"x": "abc", "label": 1}\n' * 30}, {"data.sources.0.path": "e.jsonl"},
     r"source 'web'"),
    ("ragged vectors", V, {"e.jsonl": '{"x": [1, 2], "label": 1}\n{"x": [1, 2, 3], "label": 0}\n' * 15},
     {"data.sources.0.path": "e.jsonl"}, r"source 'web'"),
    ("vectors of other dimension", V, {"e.jsonl": '{"x": [1, 2], "label": 1}\n{"x": [3, 2], "label": 0}\n' * 15},
     {"data.sources.0.path": "e.jsonl"}, r"dimension|features|dim"),
    ("duplicate ids", T, {"e.jsonl": '{"text": "a b c", "uid": "same"}\n' * 30},
     {"data.sources.0.path": "e.jsonl", "data.sources.0.id": "uid"}, r"source 'web'.*duplicate"),
    ("target smaller than one context", T, {"e.jsonl": '{"text": "hi"}\n'}, {"data.target.path": "e.jsonl"},
     r"target set smaller than one context"),
    ("tokenizer that is not", T, {"tok.json": "{]"}, {"curate.trainer.tokenizer": "tok.json"}, r"curate.trainer"),
]

RAW_CASES = [
    ("not yaml", "pipeline: [curate\n", r"not valid YAML"),
    ("yaml list", "- pipeline: curate\n", r"expected a mapping of keys to values at the top level, got list"),
    ("yaml scalar", "curate\n", r"expected a mapping .* got str"),
    ("empty file", "", r"expected a mapping .* got NoneType"),
    ("duplicate top key", "pipeline: curate\npipeline: purchase\ndata: {bundled: digits}\n",
     r"key 'pipeline' is given twice"),
    ("duplicate nested key", "data: {bundled: digits}\ncurate: {tokens: 10, tokens: 20}\n",
     r"key 'tokens' is given twice"),
    ("python object tag", "data: !!python/object/apply:os.system ['echo hacked']\n",
     r"not valid YAML: could not determine a constructor"),
    ("python name tag", "data: !!python/name:os.system\n", r"not valid YAML"),
    ("not utf-8", b"data: {bundled: \xff\xfe}\n", r"not valid UTF-8"),
    ("tab indentation", "data:\n\tbundled: digits\n", r"not valid YAML"),
]


def _expect_refused(argv, capsys, match):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, f"exit {rc}: {err}"
    assert "Traceback" not in err
    assert err.startswith("datamix: error: "), err
    import re
    assert re.search(match, err), f"{match!r} not in {err!r}"
    return err


def _refused_everywhere(tmp_path, capsys, cfg_path: Path, match: str) -> None:
    """``info`` refuses the config, then ``run`` does with the same message and writes nothing."""
    _expect_refused(["info", str(cfg_path)], capsys, match)
    out = tmp_path / "out"
    _expect_refused(["run", str(cfg_path), "--out", str(out), "-q"], capsys, match)
    assert not out.exists(), sorted(str(p) for p in out.rglob("*"))


@pytest.fixture
def base(files, make_text_config, make_vector_config):
    """The valid config of a kind of case, a fresh copy each call."""
    def make(kind: str) -> dict:
        if kind == T:
            return copy.deepcopy(make_text_config(files))
        return copy.deepcopy(make_vector_config(files, {V: "curate"}.get(kind, kind)))
    return make


@pytest.mark.parametrize("case, kind, changes, match", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_bad_config_is_refused_before_anything_is_written(tmp_path, capsys, files, base, case, kind, changes,
                                                           match):
    cfg = base(kind)
    for key, value in changes.items():
        _set(cfg, key, files[value[1:]] if isinstance(value, str) and value.startswith("@") else value)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    _refused_everywhere(tmp_path, capsys, path, match)


@pytest.mark.parametrize("case, kind, contents, changes, match", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_bad_file_is_refused_before_anything_is_written(tmp_path, capsys, base, case, kind, contents, changes, match):
    cfg = base(kind)
    for name, content in contents.items():
        (tmp_path / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    for key, name in changes.items():
        _set(cfg, key, str(tmp_path / name) if "." in name else name)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    _refused_everywhere(tmp_path, capsys, path, match)


@pytest.mark.parametrize("case, text, match", RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_bad_yaml_is_refused_before_anything_is_written(tmp_path, capsys, case, text, match):
    path = tmp_path / "cfg.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    _refused_everywhere(tmp_path, capsys, path, match)


def test_command_line_mistakes(tmp_path, capsys, base):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(base(E)))
    as_file = tmp_path / "a_file"
    as_file.write_text("keep me")
    cases = [
        (["run", str(tmp_path / "missing.yaml")], r"missing.yaml: config file not found"),
        (["run", str(tmp_path)], r"(?i)is a directory"),
        (["run", str(cfg), "--out", str(as_file)], r"a_file is a file, not a folder"),
        (["run", str(cfg), "--out", str(as_file / "sub")], r"a_file"),
        (["apply", str(cfg), "--out", str(tmp_path / "o")], r"the prune_eval pipeline .* has no stage 'apply'"),
        (["info", str(tmp_path / "nowhere")], r"is not a config file, an embedding store or a run directory"),
    ]
    for argv, match in cases:
        _expect_refused(argv, capsys, match)
    assert as_file.read_text() == "keep me" and not (tmp_path / "o").exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_run_directory_is_named(tmp_path, capsys, base):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(base(E)))
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    _expect_refused(["run", str(cfg), "--out", str(locked / "run")], capsys, r"locked")


@pytest.mark.parametrize("kind", [T, V, P, E])
def test_the_base_configs_are_valid(tmp_path, capsys, base, kind):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(base(kind)))
    assert main(["info", str(path)]) == 0, capsys.readouterr().err


def test_the_suite_holds_at_least_150_distinct_bad_inputs():
    cases = [c[0] for c in CONFIG_CASES + FILE_CASES + RAW_CASES]
    assert len(set(cases)) == len(cases) and len(cases) + 6 >= 150


def test_target_classes_that_no_purchased_source_has_are_warned_about(caplog):
    from pipelines.purchase import _validate
    from datamix.config import PurchaseConfig
    from datamix.data import Source

    X = np.zeros((6, 2), dtype=np.float32)
    sources = [Source.from_arrays("a", X, labels=[0, 1] * 3, price=1.0),
               Source.from_arrays("b", X, labels=[1, 0] * 3, price=1.0)]
    target = Source.from_arrays("t", X, labels=[0, 1, 2, 2, 7, 0])
    with caplog.at_level(logging.WARNING):
        _validate(PurchaseConfig(budget=4, sizes=[2, 4]), sources, target)
    assert "target class(es) ['2', '7'] occur in no purchased source" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        _validate(PurchaseConfig(budget=4, sizes=[2, 4]), sources, Source.from_arrays("t", X, labels=[0, 1] * 3))
    assert "occur in no purchased source" not in caplog.text
