"""Fixtures shared by the pipeline tests."""

import re

import pytest

from datamix.cli import main


@pytest.fixture
def refused(tmp_path, capsys):
    """``refused(cfg, match)``: ``datamix info`` and ``datamix run`` both exit 2 with a one-line error
    matching ``match`` (no traceback), and the run writes nothing."""

    def check(cfg, match: str) -> None:
        out = tmp_path / "out"
        for argv in (["info", str(cfg)], ["run", str(cfg), "--out", str(out), "-q"]):
            rc = main(argv)
            err = capsys.readouterr().err
            assert rc == 2, err
            assert err.startswith("datamix: error: ") and "Traceback" not in err
            assert re.search(match, err), f"{match!r} not in {err!r}"
        assert not out.exists()

    return check
