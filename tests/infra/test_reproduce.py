"""`python -m workbench.reproduce`: the tour at smoke scale, failure semantics, unknown parameters, skipping."""

import json
import math
import os
import stat
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from workbench import notebook as nbhelp
from workbench import reproduce

ROOT = Path(__file__).resolve().parents[2]
KERNEL = {"name": "workbench", "display_name": "workbench (.venv)", "language": "python"}


def _finite(x):
    if isinstance(x, dict):
        return all(_finite(v) for v in x.values())
    if isinstance(x, list):
        return all(_finite(v) for v in x)
    return isinstance(x, int | float) and math.isfinite(x)


def _tiny_notebook(path: Path, experiment: str) -> None:
    nb = new_notebook(metadata={"kernelspec": KERNEL, "language_info": {"name": "python"}})
    nb.cells = [
        new_code_cell('SCALE = "smoke"\nSEED = 0\nFAIL = False', metadata={"tags": ["parameters"]}),
        new_markdown_cell("A tiny notebook for the runner's tests."),
        new_code_cell("from workbench.results import record_metrics"),
        new_code_cell('if FAIL:\n    raise RuntimeError("deliberate failure")'),
        new_code_cell(f'record_metrics("{experiment}", {{"x": 1.0, "fail": int(FAIL)}}, {{"scale": SCALE}}, '
                      f'seed=SEED)'),
    ]
    nbformat.write(nb, path)


def _manifest(path: Path, entries: list[dict]) -> Path:
    path.write_text(json.dumps({"notebooks": entries}))  # JSON is YAML
    return path


@pytest.fixture
def tiny(tmp_path):
    nbs = tmp_path / "nbs"
    nbs.mkdir()
    for name in ("a", "b", "c"):
        _tiny_notebook(nbs / f"{name}.ipynb", name)
    return nbs, tmp_path / "results"


def _run(nbs, res, manifest, *extra):
    return reproduce.main(["--scale", "smoke", "--manifest", str(manifest), "--notebooks-dir", str(nbs),
                           "--results-dir", str(res), *extra])


@pytest.mark.slow
def test_failure_stops_batch_and_keeps_earlier_results(tiny, capsys):
    nbs, res = tiny
    entry = {"a": {"notebook": "a.ipynb", "experiment": "a", "params": None},
             "b": {"notebook": "b.ipynb", "experiment": "b", "params": None, "depends_on": ["a"]},
             "c": {"notebook": "c.ipynb", "experiment": "c", "params": None}}
    assert _run(nbs, res, _manifest(nbs / "ok.yaml", [entry["a"], entry["b"]])) == 0
    good_metrics = (res / "b" / "metrics.json").read_bytes()
    good_nb = (res / "b" / "b.ipynb").read_bytes()
    capsys.readouterr()

    failing = _manifest(nbs / "fail.yaml", [entry["a"], {**entry["b"], "parameters": {"FAIL": True}}, entry["c"]])
    assert _run(nbs, res, failing) == 1
    out = capsys.readouterr()
    assert "a: results for key" in out.out and "skipped" in out.out  # finished notebooks are not re-run
    assert str(nbs / "b.ipynb") in out.err and "cell 3" in out.err
    assert "RuntimeError: deliberate failure" in out.err
    assert (res / "b" / "metrics.json").read_bytes() == good_metrics  # the good result is untouched
    assert (res / "b" / "b.ipynb").read_bytes() == good_nb
    assert not (res / "c").exists()  # the batch stopped at b
    assert (res / ".failed" / "b" / "b.ipynb").is_file()  # the failed copy, with its traceback, for debugging
    assert not list(res.glob(".stage-*"))


def test_unknown_parameter_is_rejected_before_running(tiny, capsys):
    nbs, res = tiny
    bad = _manifest(nbs / "bad.yaml", [{"notebook": "a.ipynb", "experiment": "a", "params": None,
                                        "parameters": {"FAIL": False, "LEARNING_RATE": 0.1}}])
    assert _run(nbs, res, bad) == 2
    err = capsys.readouterr().err
    assert "LEARNING_RATE" in err and "SCALE, SEED, FAIL" in err
    assert not res.exists() or not any(res.iterdir())


def test_manifest_errors(tiny):
    nbs, _ = tiny
    with pytest.raises(reproduce.ReproduceError, match="must be listed before"):
        reproduce.read_manifest(_manifest(nbs / "m1.yaml", [
            {"notebook": "a.ipynb", "experiment": "a", "depends_on": ["b"]},
            {"notebook": "b.ipynb", "experiment": "b"}]), nbs)
    with pytest.raises(reproduce.ReproduceError, match="'report' entry must be the last"):
        reproduce.read_manifest(_manifest(nbs / "m2.yaml", [
            {"notebook": "a.ipynb", "experiment": "report"}, {"notebook": "b.ipynb", "experiment": "b"}]), nbs)
    with pytest.raises(reproduce.ReproduceError, match="unknown field"):
        reproduce.read_manifest(_manifest(nbs / "m3.yaml", [
            {"notebook": "a.ipynb", "experiment": "a", "seed": [1]}]), nbs)
    entries = reproduce.read_manifest(_manifest(nbs / "m4.yaml", [
        {"notebook": "a.ipynb", "experiment": "a", "seeds": {"cpu": [0, 1, 2]}},
        {"notebook": "b.ipynb", "experiment": "report"}]), nbs)
    assert entries[1].depends_on == ("a",)
    assert reproduce.notebook_parameters(entries[0], "cpu") == {"SCALE": "cpu", "SEED": [0, 1, 2]}
    assert reproduce.notebook_parameters(entries[0], "smoke")["SEED"] == 0


def test_stale_stage_of_a_killed_run_is_removed_live_one_kept(tmp_path):
    import os
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".stage-tour-{dead.pid}-abc123"
    live = tmp_path / f".stage-pretrain-{os.getpid()}-def456"
    result = tmp_path / "tour"
    for d in (stale, live, result):
        d.mkdir()
        (d / "metrics.json").write_text("{}")
    assert reproduce.remove_stale_stages(tmp_path) == [stale]
    assert not stale.exists() and live.is_dir() and result.is_dir()


def test_results_are_reused_on_this_machine_only_and_notebook_edits_rerun(tiny):
    nbs, res = tiny
    entry = reproduce.read_manifest(_manifest(nbs / "m.yaml", [{"notebook": "a.ipynb", "experiment": "a",
                                                                "params": None}]), nbs)[0]
    key = lambda: nbhelp.cache_key(reproduce.run_key(entry, "smoke", res, None, nbs))  # noqa: E731
    k0 = key()
    (res / "a").mkdir(parents=True)
    for name in ("metrics.json", "a.ipynb"):
        (res / "a" / name).write_text("{}")
    (res / "a" / "run.json").write_text(json.dumps({"key": k0}))
    assert not reproduce.is_done(entry, res, k0)  # committed results, fresh clone: no ledger -> re-run
    (res / ".ledger").mkdir()
    (res / ".ledger" / "a.json").write_text(json.dumps({"key": k0}))
    assert reproduce.is_done(entry, res, k0)  # finished here with the same key -> skipped

    nb = nbformat.read(nbs / "a.ipynb", as_version=4)
    nb.cells[1].metadata["collapsed"] = True  # metadata / outputs do not count
    nbformat.write(nb, nbs / "a.ipynb")
    assert key() == k0
    nb.cells[1].source += "\nEdited."
    nbformat.write(nb, nbs / "a.ipynb")
    assert key() != k0 and not reproduce.is_done(entry, res, key())


@pytest.fixture
def fake_kernel(monkeypatch):
    """papermill.execute_notebook stand-in: 'runs' the notebook in this process, seeing the kernel's environment."""
    import shutil

    import papermill

    from workbench import results

    def execute(input_path, output_path, parameters, **kw):
        exp = Path(input_path).stem
        root = os.environ.get("WORKBENCH_PARAMS")
        preset = nbhelp.load_params(exp, parameters["SCALE"]) if root and (Path(root) / exp).is_dir() else {}
        results.record_metrics(exp, {"lr": preset.get("lr", 0.0)}, {"scale": parameters["SCALE"]})
        shutil.copyfile(input_path, output_path)  # written like papermill does: mode from the umask

    monkeypatch.setattr(papermill, "execute_notebook", execute)


def test_params_dir_is_what_the_kernel_reads_and_what_is_recorded(tiny, tmp_path, fake_kernel):
    nbs, res = tiny
    for root, lr in ((nbs / "params", 0.1), (tmp_path / "other", 0.5)):
        (root / "a").mkdir(parents=True)
        (root / "a" / "smoke.yaml").write_text(f"lr: {lr}\n")
    manifest = _manifest(nbs / "m.yaml", [{"notebook": "a.ipynb", "experiment": "a"}])
    assert _run(nbs, res, manifest, "--params-dir", str(tmp_path / "other")) == 0
    assert json.loads((res / "a" / "metrics.json").read_text())["metrics"] == {"lr": 0.5}
    assert json.loads((res / "a" / "run.json").read_text())["preset"] == {"lr": 0.5}
    assert _run(nbs, res, manifest) == 0  # default: <notebooks-dir>/params, for the kernel too
    assert json.loads((res / "a" / "metrics.json").read_text())["metrics"] == {"lr": 0.1}
    assert json.loads((res / "a" / "run.json").read_text())["preset"] == {"lr": 0.1}


def test_dependency_results_of_another_scale_are_refused(tiny, fake_kernel, capsys):
    nbs, res = tiny
    manifest = _manifest(nbs / "m.yaml", [{"notebook": "a.ipynb", "experiment": "a", "params": None},
                                          {"notebook": "b.ipynb", "experiment": "b", "params": None,
                                           "depends_on": ["a"]}])
    (res / "a").mkdir(parents=True)
    (res / "a" / "metrics.json").write_text(json.dumps({"metrics": {"x": 1}, "provenance": {"scale": "cpu"}}))
    assert _run(nbs, res, manifest, "--only", "b") == 2
    err = capsys.readouterr().err
    assert "'a', whose results" in err and "from scale 'cpu', not 'smoke'" in err
    assert not (res / "b").exists()
    assert _run(nbs, res, manifest, "--only", "a") == 0  # now at this scale
    assert _run(nbs, res, manifest, "--only", "b") == 0


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_results_follow_the_umask(tiny, fake_kernel, umask):
    nbs, res = tiny
    old = os.umask(umask)
    try:
        assert _run(nbs, res, _manifest(nbs / "m.yaml", [{"notebook": "a.ipynb", "experiment": "a",
                                                          "params": None}])) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((res / "a").stat().st_mode) == 0o777 & ~umask
    for f in (res / "a" / "metrics.json", res / "a" / "run.json", res / "a" / "a.ipynb", res / ".ledger" / "a.json"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~umask, f


def test_configuration_errors_are_one_line(tiny, capsys):
    nbs, res = tiny
    manifest = _manifest(nbs / "m.yaml", [{"notebook": "a.ipynb", "experiment": "a", "params": "nope"}])
    assert _run(nbs, res, manifest) == 2
    err = capsys.readouterr().err  # papermill logs the notebooks it inspects; the error is one line of its own
    lines = [ln for ln in err.splitlines() if ln.startswith("reproduce:")]
    assert len(lines) == 1 and "no parameter preset" in lines[0] and "Traceback" not in err
    (nbs / "bad.yaml").write_text("notebooks: [\n")
    assert _run(nbs, res, nbs / "bad.yaml") == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("reproduce:")]
    assert len(lines) == 1 and "bad.yaml: not valid YAML" in lines[0] and "Traceback" not in err
    with pytest.raises(reproduce.ReproduceError):
        _run(nbs, res, nbs / "bad.yaml", "--debug")
