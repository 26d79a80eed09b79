"""Result files with provenance: atomic writers, tables, figures and `record_metrics`.

Every writer goes through a temporary file in the target directory and `os.replace`, so a crash mid-write
leaves the previous file intact. Results live under `results_dir()/<experiment>/` (`<repo>/results` unless
`$WORKBENCH_RESULTS` is set). While `python -m workbench.reproduce` runs a notebook it points
`experiment_dir(<that experiment>)` at a staging directory (`$WORKBENCH_STAGE_EXPERIMENT`,
`$WORKBENCH_STAGE_DIR`) and moves it into place only when the notebook succeeded.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import math
import numbers
import os
import platform
import socket
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
STAGE_EXPERIMENT_ENV = "WORKBENCH_STAGE_EXPERIMENT"
STAGE_DIR_ENV = "WORKBENCH_STAGE_DIR"


# ----------------------------------------------------------------------------------------- locations
def results_dir() -> Path:
    """Results root: `$WORKBENCH_RESULTS` or `<repo>/results`."""
    env = os.environ.get("WORKBENCH_RESULTS")
    return Path(env).expanduser().resolve() if env else REPO_ROOT / "results"


def experiment_dir(experiment: str) -> Path:
    """Where `experiment` writes its results (a staging directory while `reproduce` runs it)."""
    if os.environ.get(STAGE_EXPERIMENT_ENV) == experiment and os.environ.get(STAGE_DIR_ENV):
        return Path(os.environ[STAGE_DIR_ENV])
    return results_dir() / experiment


# ----------------------------------------------------------------------------------------- atomic writes
def current_umask() -> int:
    """The process umask, read from /proc where possible (else set and restored at once)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def apply_umask(path: str | os.PathLike, recursive: bool = False) -> None:
    """Give `path` the mode a plain `open`/`mkdir` would (0666/0777 minus the umask).

    `tempfile.mkstemp`/`mkdtemp` create 0600/0700 entries; atomic writers call this before renaming them into
    place so that shared results and served files stay readable by others. `recursive` covers a directory tree.
    """
    mask = current_umask()
    root = Path(path)
    todo = [root]
    if recursive and root.is_dir():
        todo += sorted(root.rglob("*"))
    for p in todo:
        if not p.is_symlink():
            os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~mask)


def _atomic_write(path: str | os.PathLike, write: Callable[[Any], None], binary: bool) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        apply_umask(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` atomically (UTF-8)."""
    return _atomic_write(path, lambda f: f.write(text), binary=False)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` atomically."""
    return _atomic_write(path, lambda f: f.write(data), binary=True)


def _jsonable(x: Any) -> Any:
    """json.dumps fallback: numpy/jax scalars and arrays, paths, dataclasses, sets."""
    if hasattr(x, "tolist"):  # numpy / jax arrays and scalars
        return x.tolist()
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    if isinstance(x, set | frozenset):
        return sorted(x)
    if hasattr(x, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(x)
    raise TypeError(f"cannot write {type(x).__name__} to JSON: {x!r}")


def to_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n"


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write `obj` as indented, key-sorted JSON, atomically."""
    return write_text(path, to_json(obj))


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def save_table(df, out_dir: str | os.PathLike, name: str, floatfmt: str = ".4g") -> tuple[Path, Path]:
    """Write a pandas DataFrame as `<name>.csv` and `<name>.md` (GitHub Markdown); returns both paths.
    A named or non-default index (e.g. after `set_index("model")`) is written as the first column(s); multi-level
    column headers (after `.agg(["mean", "std"])` or a pivot) are flattened to one row: "accuracy mean"."""
    import pandas as pd

    out_dir = Path(out_dir)
    if isinstance(df.columns, pd.MultiIndex):
        df = df.copy()
        df.columns = [" ".join(str(level) for level in col if str(level) != "") for col in df.columns]
    index = not (isinstance(df.index, pd.RangeIndex) and df.index.name is None)  # keep a meaningful index
    csv = write_text(out_dir / f"{name}.csv", df.to_csv(index=index))
    md = write_text(out_dir / f"{name}.md", df.to_markdown(index=index, floatfmt=floatfmt) + "\n")
    return csv, md


def save_figure(fig, out_dir: str | os.PathLike, name: str, dpi: int = 120) -> tuple[Path, Path]:
    """Write a matplotlib figure as `<name>.png` and `<name>.svg` (no timestamps, so reruns diff cleanly)."""
    out_dir = Path(out_dir)
    paths = []
    for fmt, meta in (("png", {"Software": None}), ("svg", {"Date": None, "Creator": None})):
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight", metadata=meta)
        paths.append(write_bytes(out_dir / f"{name}.{fmt}", buf.getvalue()))
    return paths[0], paths[1]


# ----------------------------------------------------------------------------------------- provenance
def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("workbench", "jax", "jaxlib", "flax", "optax", "numpy", "papermill"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def machine() -> dict[str, Any]:
    """Hostname, platform, CPU count, JAX devices and package versions."""
    try:
        import jax

        devices = [f"{d.platform}:{d.device_kind}" for d in jax.devices()]
    except Exception as e:  # noqa: BLE001 - provenance must never fail a run
        devices = [f"unavailable ({type(e).__name__})"]
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax_devices": devices,
        "versions": _versions(),
    }


def provenance(params: Mapping[str, Any] | None, scale: str | None, seed: Any) -> dict[str, Any]:
    """Git commit + dirty flag (tracked files modified outside `results/`), UTC date, scale, seed, parameters and
    machine. Regenerated results are not code: they do not make a run dirty."""
    status = _git("--no-optional-locks", "status", "--porcelain", "--untracked-files=no", "--", ".",
                  ":(exclude)results")
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "date_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "scale": scale,
        "seed": seed,
        "parameters": json.loads(to_json(dict(params or {}))),
        "machine": machine(),
    }


# ----------------------------------------------------------------------------------------- metrics
class NonFiniteMetricError(ValueError):
    """A metric is NaN, infinite or not a number."""


def check_finite(metrics: Mapping[str, Any], prefix: str = "") -> None:
    """Raise `NonFiniteMetricError` naming the first metric (path 'a/b/0') that is not a finite number.

    Values may be numbers (Python, numpy or 0-d/1-d arrays), lists of numbers, or nested dicts of those.
    """
    def visit(value: Any, name: str) -> None:
        if hasattr(value, "tolist") and not isinstance(value, bool | numbers.Number):
            value = value.tolist()
        elif hasattr(value, "item") and not isinstance(value, bool):
            value = value.item()
        if isinstance(value, Mapping):
            for k, v in value.items():
                visit(v, f"{name}/{k}" if name else str(k))
        elif isinstance(value, list | tuple):
            for i, v in enumerate(value):
                visit(v, f"{name}/{i}")
        elif isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise NonFiniteMetricError(f"metric {name!r} is not a number: {value!r} ({type(value).__name__})")
        elif not math.isfinite(value):
            raise NonFiniteMetricError(f"metric {name!r} is not finite: {value!r}")

    if not isinstance(metrics, Mapping) or not metrics:
        raise NonFiniteMetricError("metrics must be a non-empty dict of name -> number")
    visit(metrics, prefix)


def record_metrics(experiment: str, metrics: Mapping[str, Any], params: Mapping[str, Any] | None = None,
                   out_dir: str | os.PathLike | None = None, *, scale: str | None = None,
                   seed: Any = None) -> Path:
    """Write `<out_dir>/metrics.json` = {experiment, metrics, param_key, provenance}; returns its path.

    `out_dir` defaults to `experiment_dir(experiment)` (i.e. `results/<experiment>/`). `scale` and `seed`
    default to `params['scale']` / `params['seed']` (as `notebook.load_params` sets them). Every metric must
    be a finite number: a NaN or inf raises `NonFiniteMetricError` naming it, and nothing is written.
    """
    from workbench.notebook import cache_key

    params = dict(params or {})
    check_finite(metrics)
    scale = scale if scale is not None else params.get("scale")
    seed = seed if seed is not None else params.get("seed")
    record = {
        "experiment": experiment,
        "metrics": json.loads(to_json(dict(metrics))),
        "param_key": cache_key(params),
        "provenance": provenance(params, scale, seed),
    }
    out = Path(out_dir) if out_dir is not None else experiment_dir(experiment)
    return write_json(out / "metrics.json", record)


def load_records(root: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """{experiment: metrics.json record} for every `<root>/<experiment>/metrics.json` (root: `results_dir()`)."""
    root = Path(root) if root is not None else results_dir()
    return {p.parent.name: read_json(p) for p in sorted(root.glob("*/metrics.json"))
            if not p.parent.name.startswith(".")}


def load_metrics(root: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """{experiment: metrics} for every recorded experiment under `root`."""
    return {name: rec["metrics"] for name, rec in load_records(root).items()}
