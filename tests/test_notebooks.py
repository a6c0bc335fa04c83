"""The notebooks are committed clean and run top to bottom (nbclient) on synthetic data."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
CELL_TIMEOUT = 120


def _parameters_index(nb: nbformat.NotebookNode) -> int:
    tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell must be tagged 'parameters'"
    return tagged[0]


def run_notebook(name: str, parameters: dict[str, object]) -> nbformat.NotebookNode:
    """Execute a notebook with ``parameters`` injected after its parameters cell (as papermill does)."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    cell = new_code_cell("\n".join(f"{k} = {v!r}" for k, v in parameters.items()))
    cell.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(_parameters_index(nb) + 1, cell)
    NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return nb


def _outputs(nb: nbformat.NotebookNode, mime: str) -> list[str]:
    return [o["data"][mime] for c in nb.cells if c.cell_type == "code" for o in c.outputs
            if mime in o.get("data", {})]


@pytest.mark.parametrize("name, parameters", [("01_explore.ipynb", ["DATA_DIR", "CLIP", "CONFIG_FILE"]),
                                              ("02_results.ipynb", ["RUN_DIR"])])
def test_committed_clean_with_parameters(name, parameters):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: commit without outputs"
    source = nb.cells[_parameters_index(nb)].source
    for parameter in parameters:
        assert f"{parameter} = " in source
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "def " not in code and "import librosa" not in code  # logic lives in esc_tf.reporting.plots


def test_explore_notebook_runs(dataset_dir):
    nb = run_notebook("01_explore.ipynb", {"DATA_DIR": str(dataset_dir), "CLIP": "2-100007-A-0.wav"})
    assert len(_outputs(nb, "image/png")) >= 5  # balance, folds, durations, levels, clip
    assert sum("<audio" in html for html in _outputs(nb, "text/html")) == 2  # original and model input
    assert any("2-100007-A-0.wav" in text for text in _outputs(nb, "text/plain"))


def test_results_notebook_runs(exported_run):
    nb = run_notebook("02_results.ipynb", {"RUN_DIR": str(exported_run)})
    assert len(_outputs(nb, "image/png")) == 5  # curves, 2 confusion matrices, F1, float vs int8
    tables = "\n".join(_outputs(nb, "text/html"))
    assert "int8 (TFLM)" in tables and "TFLM arena, measured (bytes)" in tables and "chainsaw" in tables
