"""The package boundaries (README, "The journey of the data"): imports flow one way.

sleepdata is the torch-free core; training, converter and host_tools stand on it. host_tools never
needs the training stack (torch, TensorFlow) nor scipy, so that ``pip install '.[host]'`` is enough
to stream to a board. Every import statement is checked, those inside functions included.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

PACKAGES = ("sleepdata", "training", "converter", "host_tools")
TRAINING_STACK = ("torch", "tensorflow", "keras", "onnx")

#: package -> top-level modules it must never import (at any depth, lazily or not)
FORBIDDEN = {
    "sleepdata": ("training", "converter", "host_tools", *TRAINING_STACK),
    "host_tools": ("training", "converter", "scipy", *TRAINING_STACK),
    "training": ("converter", "host_tools"),
    "converter": ("host_tools",),
}
#: what converter may take from training: the model, to export it
CONVERTER_FROM_TRAINING = {"training.model"}
#: the only core module that needs scipy (the ``simulate`` extra; ``.[host]`` has no scipy)
SCIPY_IN_CORE = "sleepdata/simulator.py"


def imports(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in the module at ``path`` (under ``root``)."""
    here = list(path.relative_to(root).with_suffix("").parts)  # its package: all but the last
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level] if node.level else []
            found.append((node.lineno, ".".join([*base, *([node.module] if node.module else [])])))
    return found


def violations(package: str) -> list[str]:
    bad = []
    for path in sorted((REPO / package).rglob("*.py")):
        for line, module in imports(path, REPO):
            top = module.split(".")[0]
            where = f"{path.relative_to(REPO)}:{line} imports {module}"
            if top in FORBIDDEN[package]:
                bad.append(where)
            elif package == "sleepdata" and top == "scipy":
                if path.relative_to(REPO).as_posix() != SCIPY_IN_CORE:
                    bad.append(where + f" (only {SCIPY_IN_CORE} may need scipy)")
            elif package == "converter" and top == "training":
                if module not in CONVERTER_FROM_TRAINING:
                    bad.append(where + f" (converter may import only {CONVERTER_FROM_TRAINING})")
    return bad


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_flow_one_way(package):
    assert violations(package) == []


def test_the_checker_sees_a_forbidden_import(tmp_path, monkeypatch):
    """The rule is live: a lazy ``import torch`` inside a host_tools function is reported."""
    fake = tmp_path / "host_tools"
    fake.mkdir()
    (fake / "m.py").write_text("def f():\n    import torch\n    from ..training import x\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert violations("host_tools") == [
        "host_tools/m.py:2 imports torch",
        "host_tools/m.py:3 imports training",
    ]


def test_host_tools_stream_help_loads_no_training_stack():
    """``python -X importtime -m host_tools stream --help``: no torch, TensorFlow or training."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "host_tools", "stream", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    assert "usage: host_tools stream" in proc.stdout
    loaded = {
        line.split("|")[-1].strip().split(".")[0]
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "host_tools" in loaded  # the log was read
    assert not loaded & {"torch", "tensorflow", "training", "converter", "onnx", "keras"}
