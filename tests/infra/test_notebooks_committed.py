"""Every committed notebook: no outputs, one `parameters` cell of UPPER_CASE names, the workbench kernel;
every preset folder complete; the manifest valid."""

import ast
from pathlib import Path

import nbformat
import pytest
import yaml

from workbench import notebook as nbhelp
from workbench import reproduce

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PATHS = sorted(p for p in NOTEBOOKS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def test_there_are_notebooks():
    assert PATHS, f"no notebooks under {NOTEBOOKS}"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_notebook_is_clean_and_parameterised(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name}: cell {i} has outputs"
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, f"{path.name}: {len(params)} cells tagged 'parameters' (need exactly 1)"
    assert params[0].cell_type == "code"
    names = []
    for node in ast.parse(params[0].source).body:
        assert isinstance(node, ast.Assign | ast.AnnAssign), f"{path.name}: only assignments in parameters"
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names += [t.id for t in targets if isinstance(t, ast.Name)]
    assert {"SCALE", "SEED"} <= set(names), f"{path.name}: parameters must include SCALE and SEED"
    assert all(n.isupper() for n in names), f"{path.name}: parameter names must be UPPER_CASE: {names}"
    assert nb.metadata["kernelspec"]["name"] == "workbench"
    assert nb.metadata["language_info"]["name"] == "python"
    assert any(c.cell_type == "markdown" for c in nb.cells), f"{path.name}: tell the story in markdown"


def test_manifest_and_presets():
    entries = reproduce.read_manifest(NOTEBOOKS / "manifest.yaml", NOTEBOOKS)
    listed = {NOTEBOOKS / e.notebook for e in entries}
    assert set(PATHS) <= listed, f"notebooks missing from manifest.yaml: {sorted(set(PATHS) - listed)}"
    for e in entries:
        for scale in nbhelp.SCALES:
            reproduce.validate_parameters(NOTEBOOKS / e.notebook, reproduce.notebook_parameters(e, scale))
        if e.params:  # every scale has a preset, all with the same keys
            keys = {s: set(nbhelp.read_preset(e.params, s, NOTEBOOKS / "params")) for s in nbhelp.SCALES}
            assert all(k == keys["smoke"] for k in keys.values()), f"{e.params}: preset keys differ: {keys}"
    for path in (NOTEBOOKS / "params").rglob("*.yaml"):
        assert path.stem in nbhelp.SCALES, path
        assert isinstance(yaml.safe_load(path.read_text()), dict), path
