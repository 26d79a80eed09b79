"""Run the experiment notebooks of `notebooks/manifest.yaml` with papermill (what `make reproduce` calls).

    python -m workbench.reproduce --scale cpu|smoke|gpu|paper [--only NAME ...] [--force]

Each manifest entry runs in order with the parameters `SCALE`, `SEED` (an int, or the entry's list of seeds
for this scale) and the entry's extra `parameters`, all checked against the notebook's `parameters` cell
first (papermill itself only warns on unknown names). A notebook writes into a staging directory
(`results/.stage-<experiment>-*`, see `results.experiment_dir`) that replaces `results/<experiment>/` only
once the notebook finished and recorded its metrics, so a failed run never overwrites a good result; the
executed notebook is saved beside its results. An entry is skipped when this machine's ledger
(`results/.ledger/<experiment>.json`, not committed) holds the same run key: the hash of the notebook's
cells, its parameters, the YAML preset for the scale and the metrics of the entries it depends on. So an
interrupted batch continues where it stopped, while a fresh clone re-runs everything, replacing the
committed results (changes to `workbench/` itself are not part of the key: use `--force`). An entry named
`report` must come last; it depends on every entry before it, so it re-renders whenever one of them re-ran.
Kernels get a persistent JAX compilation cache (`jax_cache_env`) unless `JAX_COMPILATION_CACHE_DIR` is set, and
read their presets from the folder the run key was computed from (`--params-dir`, else `$WORKBENCH_PARAMS`, else
`<notebooks-dir>/params`; exported to them as `$WORKBENCH_PARAMS`). A dependency that is not run in the same
batch must have results recorded at the same scale. Results are written with the usual permissions (umask).

Manifest format (YAML):

    notebooks:
      - notebook: 00_tour.ipynb     # path relative to the notebooks directory
        experiment: tour            # results/<experiment>/; also the default preset folder
        params: tour                # optional: preset folder notebooks/params/<params>/ (null: no preset)
        seeds: {cpu: [0, 1, 2]}     # optional: SEED passed as this list at that scale (default SEED=0)
        parameters: {OVERRIDES: {}} # optional: extra notebook parameters
        depends_on: [pretrain]      # optional: experiments whose results this one reads
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from workbench import notebook as nbhelp
from workbench import results
from workbench.cli import add_debug_flag, run_command

NOTEBOOKS_DIR = results.REPO_ROOT / "notebooks"
KERNEL = "workbench"
REPORT = "report"
LEDGER = ".ledger"  # results/.ledger/<experiment>.json: run keys finished on this machine (gitignored)
_ENTRY_FIELDS = {"notebook", "experiment", "params", "seeds", "parameters", "depends_on"}


class ReproduceError(RuntimeError):
    """A configuration problem (manifest, parameters) found before anything runs."""


class NotebookFailed(RuntimeError):
    """A notebook raised while executing; the message names the notebook, the cell and the error."""


@dataclasses.dataclass(frozen=True)
class Entry:
    notebook: str
    experiment: str
    params: str | None
    seeds: dict[str, list[int]]
    parameters: dict[str, Any]
    depends_on: tuple[str, ...]


# ----------------------------------------------------------------------------------------- manifest
def read_manifest(path: str | os.PathLike, notebooks_dir: str | os.PathLike) -> list[Entry]:
    """Parse and validate the manifest (fields, duplicates, files, dependency order, report last)."""
    path, notebooks_dir = Path(path), Path(notebooks_dir)
    if not path.is_file():
        raise ReproduceError(f"manifest {path} not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ReproduceError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    raw = data.get("notebooks") if isinstance(data, dict) else None
    if not isinstance(raw, list):
        raise ReproduceError(f"{path}: expected a mapping with a 'notebooks' list")
    entries: list[Entry] = []
    for i, item in enumerate(raw):
        where = f"{path} entry {i}"
        if not isinstance(item, dict) or "notebook" not in item or "experiment" not in item:
            raise ReproduceError(f"{where}: each entry needs 'notebook' and 'experiment'")
        if unknown := set(item) - _ENTRY_FIELDS:
            raise ReproduceError(f"{where}: unknown field(s) {sorted(unknown)}; known: {sorted(_ENTRY_FIELDS)}")
        exp = str(item["experiment"])
        if any(e.experiment == exp for e in entries):
            raise ReproduceError(f"{where}: experiment {exp!r} listed twice")
        if not (notebooks_dir / item["notebook"]).is_file():
            raise ReproduceError(f"{where}: notebook {notebooks_dir / item['notebook']} not found")
        deps = tuple(item.get("depends_on") or ())
        done = {e.experiment for e in entries}
        if missing := [d for d in deps if d not in done]:
            raise ReproduceError(f"{where}: {exp!r} depends on {missing}, which must be listed before it")
        if exp == REPORT:
            deps = tuple(e.experiment for e in entries)
        seeds = item.get("seeds") or {}
        if not isinstance(seeds, dict) or any(s not in nbhelp.SCALES for s in seeds):
            raise ReproduceError(f"{where}: 'seeds' must map scales {nbhelp.SCALES} to lists of ints")
        entries.append(Entry(notebook=str(item["notebook"]), experiment=exp,
                             params=item.get("params", exp), seeds={k: list(v) for k, v in seeds.items()},
                             parameters=dict(item.get("parameters") or {}), depends_on=deps))
    if any(e.experiment == REPORT for e in entries[:-1]):
        raise ReproduceError(f"{path}: the '{REPORT}' entry must be the last one")
    return entries


def notebook_parameters(entry: Entry, scale: str) -> dict[str, Any]:
    """SCALE, SEED and the entry's extra parameters."""
    seed: int | list[int] = entry.seeds[scale] if scale in entry.seeds else 0
    extra = {k: v for k, v in entry.parameters.items() if k not in ("SCALE", "SEED")}
    return {"SCALE": scale, "SEED": seed, **extra}


def validate_parameters(nb_path: Path, parameters: dict[str, Any]) -> None:
    """Every passed name must be declared in the notebook's `parameters` cell (and SCALE, SEED must be)."""
    import papermill

    declared = papermill.inspect_notebook(str(nb_path))
    if not declared:
        raise ReproduceError(f"{nb_path}: no cell tagged 'parameters' (SCALE, SEED, ... must be declared there)")
    if unknown := [k for k in parameters if k not in declared]:
        raise ReproduceError(f"{nb_path}: unknown parameter(s) {unknown}; the notebook's parameters cell "
                             f"declares: {', '.join(declared)}")


def _file_hash(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else None


def _cells_hash(nb_path: Path) -> str:
    """Hash of a notebook's cell types and sources (outputs and metadata do not count)."""
    import nbformat

    cells = nbformat.read(nb_path, as_version=4).cells
    return hashlib.sha256(json.dumps([[c.cell_type, c.source] for c in cells]).encode()).hexdigest()[:16]


def run_key(entry: Entry, scale: str, root: Path, params_root: Path | None,
            notebooks_dir: Path | None = None) -> dict[str, Any]:
    """What identifies a run: the notebook's cells, parameters, the preset's content and the dependencies' metrics."""
    preset = nbhelp.read_preset(entry.params, scale, params_root) if entry.params else None
    nb_path = (notebooks_dir if notebooks_dir is not None else NOTEBOOKS_DIR) / entry.notebook
    return {
        "notebook": entry.notebook,
        "cells": _cells_hash(nb_path),
        "experiment": entry.experiment,
        "parameters": notebook_parameters(entry, scale),
        "preset": preset,
        "depends_on": {d: _file_hash(root / d / "metrics.json") for d in entry.depends_on},
    }


def _ledger(root: Path, experiment: str) -> Path:
    return root / LEDGER / f"{experiment}.json"


def is_done(entry: Entry, root: Path, key: str) -> bool:
    """Finished on this machine with the same key (the ledger) and its results are all still there."""
    d = root / entry.experiment
    ledger = _ledger(root, entry.experiment)
    if not (ledger.is_file() and (d / "run.json").is_file() and (d / "metrics.json").is_file()
            and (d / Path(entry.notebook).name).is_file()):
        return False
    try:
        return results.read_json(ledger).get("key") == key == results.read_json(d / "run.json").get("key")
    except ValueError:
        return False


# ----------------------------------------------------------------------------------------- execution
@contextmanager
def _env(**values: str):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _describe_failure(err: Exception, nb_path: Path, executed: Path) -> str:
    """'<notebook>: cell N failed: Ename: message' from papermill's PapermillExecutionError."""
    idx = getattr(err, "cell_index", None)
    if idx is None:
        return f"{nb_path}: {type(err).__name__}: {err}"
    src_idx = idx
    try:  # papermill inserts an 'injected-parameters' cell; report the index in the source notebook
        import nbformat

        cells = nbformat.read(executed, as_version=4).cells
        src_idx -= sum("injected-parameters" in c.metadata.get("tags", []) for c in cells[:idx])
    except Exception:  # noqa: BLE001 - best effort
        pass
    first_line = next((ln for ln in (getattr(err, "source", "") or "").splitlines() if ln.strip()), "")
    return (f"{nb_path}: cell {src_idx} (execution count {getattr(err, 'exec_count', '?')}; starts "
            f"{first_line.strip()[:80]!r}) failed: {err.ename}: {err.evalue}")


def _replace_dir(stage: Path, final: Path) -> None:
    """Move `stage` to `final`, replacing any previous results (old dir renamed aside, then deleted)."""
    old = None
    if final.exists():
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(stage, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _stage_prefix(experiment: str) -> str:
    """`.stage-<experiment>-<pid>-`; `tempfile.mkdtemp` appends a hyphen-free random suffix."""
    return f".stage-{experiment}-{os.getpid()}-"


def remove_stale_stages(root: Path) -> list[Path]:
    """Delete `_stage_prefix` dirs left by a killed run (their pid is gone); returns them.

    A stage of a live run (its pid alive) is left alone, so two batches on one results dir do not collide.
    """
    removed = []
    for d in root.glob(".stage-*"):
        pid = d.name.rsplit("-", 2)[-2]  # the field before the random suffix, whatever hyphens the name has
        if d.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def jax_cache_env() -> dict[str, str]:
    """Persistent XLA compilation cache for the kernels (`nb.compilation_cache_dir()`), unless the user set one.

    Compilation dominates small-scale notebooks on CPU (the smoke tour: ~2x faster on a warm cache).
    """
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return {}
    return {"JAX_COMPILATION_CACHE_DIR": str(nbhelp.compilation_cache_dir()),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}


def run_entry(entry: Entry, scale: str, root: Path, notebooks_dir: Path, key: str, key_data: dict[str, Any],
              kernel: str, params_root: Path | None = None) -> float:
    """Execute one notebook into a staging dir; on success swap it into `root/<experiment>`.

    The kernel reads its presets from `params_root` (exported as `$WORKBENCH_PARAMS`), the folder whose preset
    the run key records; None leaves the kernel's default (`notebook.params_dir()`).
    """
    import papermill

    nb_path = notebooks_dir / entry.notebook
    root.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=root, prefix=_stage_prefix(entry.experiment)))
    results.apply_umask(stage)  # mkdtemp makes it 0700; results are shared and served
    executed = stage / Path(entry.notebook).name
    env = {"WORKBENCH_RESULTS": str(root), **jax_cache_env(), results.STAGE_EXPERIMENT_ENV: entry.experiment,
           results.STAGE_DIR_ENV: str(stage)}
    if params_root is not None:
        env["WORKBENCH_PARAMS"] = str(Path(params_root).resolve())
    start = time.perf_counter()
    try:
        with _env(**env):
            papermill.execute_notebook(str(nb_path), str(executed), parameters=key_data["parameters"],
                                       kernel_name=kernel, progress_bar=True, log_output=True,
                                       cwd=str(nb_path.parent))
        if not (stage / "metrics.json").is_file():
            raise NotebookFailed(f"{nb_path}: finished without writing metrics.json; its last cell must call "
                                 f"workbench.results.record_metrics({entry.experiment!r}, ...)")
    except BaseException as err:
        failed = root / ".failed" / entry.experiment
        shutil.rmtree(failed, ignore_errors=True)
        failed.parent.mkdir(parents=True, exist_ok=True)
        os.replace(stage, failed)
        if isinstance(err, NotebookFailed):
            raise
        if isinstance(err, Exception):
            msg = _describe_failure(err, nb_path, failed / executed.name)
            raise NotebookFailed(f"{msg}\n  executed copy with the traceback: {failed / executed.name}\n"
                                 f"  earlier results in {root / entry.experiment} are untouched") from err
        raise
    seconds = time.perf_counter() - start
    results.write_json(stage / "run.json", {
        "key": key, **key_data, "scale": scale, "seconds": round(seconds, 2),
        "finished_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    })
    _replace_dir(stage, root / entry.experiment)
    results.write_json(_ledger(root, entry.experiment), {"key": key})  # seconds etc. stay in run.json
    return seconds


def results_scale(root: Path, experiment: str) -> str | None:
    """The scale recorded with `root/<experiment>`'s results (metrics provenance, else run.json); None if absent."""
    for name, get in (("metrics.json", lambda r: (r.get("provenance") or {}).get("scale")),
                      ("run.json", lambda r: r.get("scale"))):
        f = root / experiment / name
        if f.is_file():
            try:
                rec = results.read_json(f)
            except ValueError as e:
                raise ReproduceError(f"{f}: unreadable ({e}); delete {root / experiment} and run "
                                     f"{experiment!r} again") from None
            if isinstance(rec, dict) and get(rec):
                return str(get(rec))
    return None


def check_dependencies(entry: Entry, scale: str, root: Path, chosen: set[str] = frozenset()) -> None:
    """Every dependency not run in this batch must have results in `root` recorded at `scale`."""
    for d in entry.depends_on:
        if d in chosen:
            continue
        if not (root / d / "metrics.json").is_file():
            raise ReproduceError(f"{entry.experiment} depends on {d!r}, which has no results in {root}; "
                                 f"run it first (drop --only, or add {d} to --only)")
        got = results_scale(root, d)
        if got is not None and got != scale:
            raise ReproduceError(f"{entry.experiment} depends on {d!r}, whose results in {root / d} are from scale "
                                 f"{got!r}, not {scale!r}; run {d} at scale {scale!r} first (drop --only, or add "
                                 f"{d} to --only)")


def reproduce(scale: str, *, only: Sequence[str] = (), force: bool = False,
              manifest: str | os.PathLike | None = None, notebooks_dir: str | os.PathLike | None = None,
              results_root: str | os.PathLike | None = None, params_root: str | os.PathLike | None = None,
              kernel: str = KERNEL, log=print) -> list[tuple[str, str, float]]:
    """Run the manifest at `scale`; returns [(experiment, 'ran'|'skipped', seconds)].

    Raises ReproduceError before running anything on a configuration problem, NotebookFailed when a notebook
    fails (the batch stops there).
    """
    if scale not in nbhelp.SCALES:
        raise ReproduceError(f"unknown scale {scale!r}; known scales: {', '.join(nbhelp.SCALES)}")
    notebooks_dir = Path(notebooks_dir) if notebooks_dir is not None else NOTEBOOKS_DIR
    manifest = Path(manifest) if manifest is not None else notebooks_dir / "manifest.yaml"
    root = Path(results_root).resolve() if results_root is not None else results.results_dir()
    if params_root is None:
        params_root = nbhelp.params_dir() if os.environ.get("WORKBENCH_PARAMS") else notebooks_dir / "params"
    params_root = Path(params_root).resolve()
    entries = read_manifest(manifest, notebooks_dir)
    names = {e.experiment for e in entries} | {Path(e.notebook).stem for e in entries}
    if unknown := [n for n in only if n not in names]:
        raise ReproduceError(f"--only {unknown}: not in {manifest}; known: {sorted(names)}")
    selected = [e for e in entries if not only or e.experiment in only or Path(e.notebook).stem in only]
    for e in selected:  # validate everything before running anything
        validate_parameters(notebooks_dir / e.notebook, notebook_parameters(e, scale))
        if e.params:
            try:
                nbhelp.read_preset(e.params, scale, params_root)
            except (OSError, ValueError) as err:
                raise ReproduceError(f"{e.experiment}: {err}") from err
    for d in remove_stale_stages(root) if root.is_dir() else []:
        log(f"removed {d.name}: staging dir of a run that was killed mid-notebook")
    done: list[tuple[str, str, float]] = []
    for i, e in enumerate(selected, 1):
        chosen = {x.experiment for x in selected}
        check_dependencies(e, scale, root, chosen)
        key_data = run_key(e, scale, root, params_root, notebooks_dir)
        key = nbhelp.cache_key(key_data)
        if not force and is_done(e, root, key):
            log(f"[{i}/{len(selected)}] {e.experiment}: results for key {key} exist, skipped")
            done.append((e.experiment, "skipped", 0.0))
            continue
        log(f"[{i}/{len(selected)}] {e.experiment}: running {notebooks_dir / e.notebook} "
            f"(scale {scale}, key {key})")
        seconds = run_entry(e, scale, root, notebooks_dir, key, key_data, kernel, params_root)
        log(f"[{i}/{len(selected)}] {e.experiment}: done in {seconds:.1f} s -> {root / e.experiment}")
        done.append((e.experiment, "ran", seconds))
    return done


class _StderrHandler(logging.StreamHandler):
    """A StreamHandler on whatever `sys.stderr` is when a record is emitted (not the stream at creation)."""

    @property  # type: ignore[override]
    def stream(self):  # noqa: ANN201 - the logging API's attribute
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # noqa: ANN001
        pass


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m workbench.reproduce", description=__doc__.split("\n")[0])
    ap.add_argument("--scale", default="cpu", choices=nbhelp.SCALES)
    ap.add_argument("--only", nargs="+", default=[], metavar="NAME", help="experiment or notebook names")
    ap.add_argument("--force", action="store_true", help="re-run even when results for the same key exist")
    ap.add_argument("--manifest", help="manifest YAML (default: <notebooks-dir>/manifest.yaml)")
    ap.add_argument("--notebooks-dir", help=f"default: {NOTEBOOKS_DIR}")
    ap.add_argument("--results-dir", help="default: $WORKBENCH_RESULTS or <repo>/results")
    ap.add_argument("--params-dir", help="default: <notebooks-dir>/params")
    ap.add_argument("--kernel", default=KERNEL, help="Jupyter kernel name (registered by `make setup`)")
    add_debug_flag(ap)
    args = ap.parse_args(argv)
    debug = getattr(args, "debug", False)
    if not logging.getLogger("papermill").handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logging.getLogger("papermill").addHandler(handler)
        logging.getLogger("papermill").setLevel(logging.INFO)
    t0 = time.perf_counter()

    def command() -> int:
        try:
            done = reproduce(args.scale, only=args.only, force=args.force, manifest=args.manifest,
                             notebooks_dir=args.notebooks_dir, results_root=args.results_dir,
                             params_root=args.params_dir, kernel=args.kernel)
        except ReproduceError as e:
            if debug:
                raise
            print(f"reproduce: error: {e}", file=sys.stderr)
            return 2
        except NotebookFailed as e:
            if debug:
                raise
            print(f"reproduce: FAILED: {e}", file=sys.stderr)
            return 1
        ran = sum(1 for _, what, _ in done if what == "ran")
        print(f"reproduce: {ran} ran, {len(done) - ran} skipped, {time.perf_counter() - t0:.1f} s in total")
        return 0

    return run_command("reproduce", command, debug)


if __name__ == "__main__":
    raise SystemExit(main())
