"""Atomic result writers, provenance and record_metrics."""

import json
import math

import matplotlib
import numpy as np
import pandas as pd
import pytest

from workbench import results

matplotlib.use("Agg")


def test_atomic_write_keeps_old_file_on_crash(tmp_path):
    target = results.write_text(tmp_path / "a.txt", "good\n")

    def crash(f):
        f.write("half-writ")
        raise KeyboardInterrupt  # a crash mid-write, even a non-Exception one

    with pytest.raises(KeyboardInterrupt):
        results._atomic_write(target, crash, binary=False)
    assert target.read_text() == "good\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temp file left behind


def test_write_json_crash_on_unserialisable_keeps_old(tmp_path):
    path = results.write_json(tmp_path / "m.json", {"a": 1})
    with pytest.raises(TypeError):
        results.write_json(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert results.read_json(results.write_json(path, {"x": np.float32(0.5), "y": np.arange(2)})) == {
        "x": 0.5, "y": [0, 1]}


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_written_files_follow_the_umask(tmp_path, umask):
    """Not mkstemp's 0600: a shared results folder or a served report.html stays readable."""
    import os
    import stat

    old = os.umask(umask)
    try:
        paths = [results.write_text(tmp_path / "report.html", "<html/>"), results.write_json(tmp_path / "m.json", {}),
                 results.write_bytes(tmp_path / "b.bin", b"x")]
    finally:
        os.umask(old)
    assert {stat.S_IMODE(p.stat().st_mode) for p in paths} == {0o666 & ~umask}


def test_save_table_and_figure(tmp_path):
    import matplotlib.pyplot as plt

    df = pd.DataFrame({"model": ["S", "L"], "loss": [3.25, 2.5]})
    csv, md = results.save_table(df, tmp_path / "t", "losses")
    assert pd.read_csv(csv).equals(df)
    assert "| model" in md.read_text()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    png, svg = results.save_figure(fig, tmp_path / "t", "curve")
    plt.close(fig)
    assert png.read_bytes()[:4] == b"\x89PNG" and "<svg" in svg.read_text()


def test_save_table_flattens_multilevel_columns(tmp_path):
    runs = pd.DataFrame({"size": ["S", "S", "L", "L"], "kind": ["adapted", "scratch"] * 2,
                         "loss": [1.0, 2.0, 3.0, 4.0]})
    wide = runs.pivot_table(index="size", columns="kind", values="loss", aggfunc=["mean"])
    csv, md = results.save_table(wide, tmp_path, "final")
    header = md.read_text().splitlines()[0]
    assert "mean adapted" in header and "mean scratch" in header and "('" not in header
    back = pd.read_csv(csv)
    assert list(back.columns) == ["size", "mean adapted", "mean scratch"]
    assert back.set_index("size").loc["L", "mean scratch"] == 4.0
    assert isinstance(wide.columns, pd.MultiIndex)  # the caller's frame is left as it was


def test_provenance_fields():
    prov = results.provenance({"lr": 1e-3}, "smoke", [0, 1])
    assert {"git_commit", "git_dirty", "date_utc", "scale", "seed", "parameters", "machine"} <= set(prov)
    assert prov["scale"] == "smoke" and prov["seed"] == [0, 1] and prov["parameters"] == {"lr": 1e-3}
    assert {"hostname", "platform", "cpu_count", "jax_devices", "versions"} <= set(prov["machine"])
    assert prov["git_commit"] is None or len(prov["git_commit"]) == 40
    assert "jax" in prov["machine"]["versions"]


def test_record_metrics_writes_finite_with_provenance(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_RESULTS", str(tmp_path))
    assert results.results_dir() == tmp_path.resolve()
    path = results.record_metrics("exp", {"loss": np.float32(2.5), "acc": [0.5, 0.75], "nested": {"n": 3}},
                                  {"steps": 10, "scale": "smoke", "seed": 1})
    assert path == tmp_path / "exp" / "metrics.json"
    rec = json.loads(path.read_text())
    assert rec["metrics"] == {"loss": 2.5, "acc": [0.5, 0.75], "nested": {"n": 3}}
    assert rec["provenance"]["scale"] == "smoke" and rec["provenance"]["seed"] == 1
    assert rec["provenance"]["parameters"]["steps"] == 10 and len(rec["param_key"]) == 16
    assert results.load_metrics(tmp_path) == {"exp": rec["metrics"]}


@pytest.mark.parametrize("bad, name", [
    ({"loss": float("nan")}, "loss"),
    ({"eval": {"acc": [0.5, math.inf]}}, "eval/acc/1"),
    ({"loss": np.float32("nan")}, "loss"),
    ({"label": "good"}, "label"),
])
def test_record_metrics_rejects_non_finite(tmp_path, bad, name):
    with pytest.raises(results.NonFiniteMetricError, match=f"'{name}'"):
        results.record_metrics("exp", bad, {}, out_dir=tmp_path)
    assert not (tmp_path / "metrics.json").exists()


def test_experiment_dir_staging(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_RESULTS", str(tmp_path / "r"))
    monkeypatch.setenv(results.STAGE_EXPERIMENT_ENV, "a")
    monkeypatch.setenv(results.STAGE_DIR_ENV, str(tmp_path / "stage"))
    assert results.experiment_dir("a") == tmp_path / "stage"
    assert results.experiment_dir("b") == (tmp_path / "r").resolve() / "b"
