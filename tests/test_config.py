from pathlib import Path

import pytest
import yaml

from datamix.config import ConfigError, load_config, parse_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("name", ["quickstart.yaml", "pydocs.yaml"])
def test_shipped_configs_validate(name):
    cfg = load_config(CONFIGS / name)
    assert cfg.data.bundled in ("digits", "pydocs")


def write(tmp_path, text):
    p = tmp_path / "cfg.yaml"
    p.write_text(text)
    return p


def test_unknown_key_names_file_key_and_allowed_keys(tmp_path):
    p = write(tmp_path, "data: {bundled: digits}\nembed: {modle: minilm}\n")
    with pytest.raises(ConfigError) as err:
        load_config(p)
    msg = str(err.value)
    assert str(p) in msg and "unknown key 'embed.modle'" in msg
    assert "allowed keys here: batch_size, device, model, shard_size, trust_remote_code" in msg


def test_unknown_key_in_a_list_item(tmp_path):
    p = write(tmp_path, "data:\n  sources:\n    - {name: a, path: x.jsonl, colour: red}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'data.sources.0.colour'; allowed keys here: field, format"):
        load_config(p)


def test_bad_value_names_key_and_value(tmp_path):
    p = write(tmp_path, "data: {bundled: digits}\nembed: {shard_size: -3}\n")
    with pytest.raises(ConfigError, match=r"cfg.yaml: embed.shard_size: .*greater than or equal to 1 \(got -3\)"):
        load_config(p)
    p = write(tmp_path, "pipeline: train\ndata: {bundled: digits}\n")
    with pytest.raises(ConfigError, match=r"pipeline: .*'curate'.*\(got 'train'\)"):
        load_config(p)


def test_source_rules(tmp_path):
    with pytest.raises(ConfigError, match="exactly one of 'path'"):
        parse_config({"data": {"sources": [{"name": "a"}]}})
    with pytest.raises(ConfigError, match="invalid source name '../up'"):
        parse_config({"data": {"sources": [{"name": "../up", "path": "x"}]}})
    with pytest.raises(ConfigError, match="not both"):
        parse_config({"data": {"bundled": "digits", "sources": [{"name": "a", "path": "x"}]}})
    with pytest.raises(ConfigError, match="must be unique"):
        parse_config({"data": {"sources": [{"name": "a", "path": "x"}, {"name": "a", "path": "y"}]}})


def test_paths_are_relative_to_the_config_file(tmp_path):
    p = write(tmp_path, "data:\n  sources:\n    - {name: a, path: sub/x.jsonl}\n")
    cfg = load_config(p)
    assert cfg.resolve(cfg.data.sources[0].path) == str(tmp_path / "sub" / "x.jsonl")


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "none.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "data: [unclosed\n"))
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_yaml_is_loaded_safely(tmp_path):
    p = write(tmp_path, "data: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)


def test_engine_short_form_and_mapping_round_trip():
    pytest.importorskip("ray.data")
    cfg = parse_config({"engine": "ray", "data": {"bundled": "digits"}})
    assert (cfg.engine.name, cfg.engine.address, cfg.engine.max_retries) == ("ray", None, 3)
    cfg = parse_config({"engine": {"name": "ray", "address": "auto", "resources": {"embed": {"num_gpus": 1}}},
                        "data": {"bundled": "digits"}})
    assert cfg.engine.resources.embed.num_gpus == 1 and cfg.engine.resources.score.num_gpus is None
    again = parse_config(yaml.safe_load(cfg.to_yaml()))
    assert again.engine == cfg.engine
