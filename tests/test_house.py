"""Issue 32: the package's layers and where files live (a checkout, an installed wheel, a user's exports)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pads_stream.common import files

from .conftest import ROOT

LINT = importlib.util.find_spec("importlinter") is not None


def lint(package_parent: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with the project's contract on the package found under ``package_parent``."""
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    cmd = [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()",
           "--config", str(ROOT / "pyproject.toml"), "--no-cache"]  # fmt: skip
    return subprocess.run(cmd, cwd=package_parent, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.skipif(not LINT, reason="import-linter is not installed (pip install -e '.[test]')")
def test_an_upward_import_breaks_the_layers_contract(tmp_path):
    copy = tmp_path / "pads_stream"
    shutil.copytree(ROOT / "pads_stream", copy, ignore=shutil.ignore_patterns("__pycache__", "*.pt", "*.json"))
    kept = lint(tmp_path)
    assert kept.returncode == 0 and "layers KEPT" in kept.stdout, kept.stdout[-2000:] + kept.stderr[-2000:]
    skeleton = copy / "geometry" / "skeleton.py"  # the lowest geometry reaching up to the node
    skeleton.write_text(skeleton.read_text() + "\n\ndef _upward():\n    from ..stream import node  # noqa: F401\n")
    broken = lint(tmp_path)
    assert broken.returncode != 0 and "layers BROKEN" in broken.stdout
    assert "pads_stream.geometry.skeleton -> pads_stream.stream.node" in broken.stdout


def test_shipped_files_resolve_in_a_checkout():
    assert files.shipped("configs", "node.json") == ROOT / "configs" / "node.json"
    assert (files.shipped("engines", "pads_h36m") / "manifest.json").exists()
    assert files.default_model_path().exists()
    with pytest.raises(ValueError, match="engines"):
        files.shipped("weights")


def test_user_exports_go_to_a_folder_the_user_owns(monkeypatch, tmp_path):
    monkeypatch.delenv("PADS_STREAM_ENGINES", raising=False)
    assert files.user_engines() == ROOT / "engines"  # a checkout: its own engines/
    monkeypatch.setattr(files, "_checkout", lambda: None)  # as installed from a wheel
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert files.user_engines() == tmp_path / "cache" / "pads-stream" / "engines"
    assert files.engine_roots()[0] == tmp_path / "cache" / "pads-stream" / "engines"
    monkeypatch.setenv("PADS_STREAM_ENGINES", str(tmp_path / "mine"))
    assert files.user_engines() == tmp_path / "mine" and files.engine_roots() == [tmp_path / "mine"]


def test_no_module_is_a_monolith():
    """No module over ~400 lines (evaluate's tables run to 404), no class over 300."""
    import ast

    for path in (ROOT / "pads_stream").rglob("*.py"):
        text = path.read_text()
        assert len(text.splitlines()) <= 410, f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef):
                size = node.end_lineno - node.lineno + 1
                assert size <= 300, f"{path.relative_to(ROOT)}: class {node.name} has {size} lines"
