"""`python server.py`'s engine options: the precisions it takes are the engine's one list."""

from __future__ import annotations

import ast

import pytest

import server
from engine.config import PRECISIONS
from tests.server.helpers import ROOT


@pytest.mark.parametrize("precision", PRECISIONS)
def test_every_precision_is_accepted_and_becomes_the_run_setting(precision):
    config, _ = server.configure(server.parse_args(["--precision", precision]))
    assert config.settings["precision"] == precision


def test_an_unknown_precision_is_refused(capsys):
    with pytest.raises(SystemExit):
        server.parse_args(["--precision", "fp8"])
    assert "invalid choice: 'fp8'" in capsys.readouterr().err


def test_api_modules_import_each_other_only_at_the_top():
    """A cycle between api modules hides in an import inside a function: there are none."""
    lazy = []
    for path in sorted((ROOT / "api").glob("*.py")):
        for function in ast.walk(ast.parse(path.read_text())):
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lazy += [f"{path.name}:{node.lineno}" for node in ast.walk(function)
                         if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "api"]
    assert lazy == []
