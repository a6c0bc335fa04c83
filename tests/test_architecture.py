"""The package's shape: layers without circles (import-linter), and only public names cross modules."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "esc_tf"


def test_layer_contracts_hold():
    """`lint-imports` reads the contracts in pyproject.toml; an upward import or a circle breaks them."""
    command = shutil.which("lint-imports")
    assert command, "import-linter is not installed (pip install -r requirements.txt)"
    result = subprocess.run([command, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_breaks_the_contracts(tmp_path):
    """The contracts are not vacuous: a copy of the package whose config imports a stage fails them."""
    copy = tmp_path / "repo"
    shutil.copytree(PACKAGE, copy / "esc_tf", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    config = copy / "esc_tf" / "config.py"
    config.write_text(config.read_text() + "\nfrom esc_tf.stages import train  # noqa: E402,F401\n")
    result = subprocess.run([shutil.which("lint-imports"), "--no-cache"], cwd=copy, capture_output=True, text=True,
                            env={"PYTHONPATH": str(copy), "PATH": str(Path(sys.executable).parent)})
    assert result.returncode != 0
    assert "esc_tf.config is not allowed to import esc_tf.stages" in result.stdout


def _private_imports(path: Path) -> list[str]:
    """``from esc_tf.x import _y`` and ``x._y`` on an imported esc_tf module, in one source file."""
    tree = ast.parse(path.read_text())
    modules: set[str] = set()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("esc_tf"):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{path.name}:{node.lineno} imports {node.module}.{alias.name}")
                modules.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules \
                and node.attr.startswith("_") and not node.attr.startswith("__"):
            found.append(f"{path.name}:{node.lineno} uses {node.value.id}.{node.attr}")
    return found


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_uses_a_private_name_of_another(path):
    assert _private_imports(path) == []


def test_the_private_name_check_finds_one(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("from esc_tf.artifacts import _hidden\nfrom esc_tf import pipeline\npipeline._batches(1)\n")
    assert len(_private_imports(source)) == 2


def test_only_the_promised_entry_points_have_a_main_block():
    with_main = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                       if "__name__ == \"__main__\"" in p.read_text() or p.name == "__main__.py")
    assert with_main == ["__main__.py", "train.py"]


def test_the_tests_mirror_the_package():
    """tests/<folder>/test_<module>.py sits beside the sub-package it tests: every test folder names a
    sub-package of esc_tf, and every test module in it names one of that sub-package's modules."""
    tests = Path(__file__).resolve().parent
    for folder in (p for p in tests.iterdir() if p.is_dir() and p.name != "__pycache__"):
        assert (PACKAGE / folder.name / "__init__.py").is_file(), f"tests/{folder.name} mirrors no sub-package"
        for test in folder.glob("test_*.py"):
            module = test.stem.removeprefix("test_")
            assert (PACKAGE / folder.name / f"{module}.py").is_file(), f"{test.relative_to(tests)} tests no module"
