"""Shared pieces of the benchmarks: configs, interleaved worker processes, load notes, statistics.

Every compared system runs in its own worker process (its own threads, XLA flags, inductor cache), and the
parent drives the workers round-robin: one block of steps each per round, so that load from other processes
on a shared machine hits every system alike. Workers report per-step wall and CPU seconds (all threads).
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@dataclasses.dataclass(frozen=True)
class Setup:
    """Model and batch sizes of one benchmark (one stack; the encoder-decoder uses two equal stacks)."""

    vocab: int = 8192
    d: int = 256
    layers: int = 4
    ffn: int = 1024
    heads: int = 4
    head_dim: int = 64
    kv_heads: int = 2
    window: int = 128
    batch: int = 8
    seq: int = 256  # decoder-only length; encoder-decoder: `seq` encoder + `seq` decoder tokens

    def gemma_config(self):
        from workbench.config import GemmaConfig
        return GemmaConfig(vocab_size=self.vocab, num_layers=self.layers, embed_dim=self.d, hidden_dim=self.ffn,
                           num_heads=self.heads, head_dim=self.head_dim, num_kv_heads=self.kv_heads,
                           query_pre_attn_scalar=self.head_dim, sliding_window=self.window)

    def encdec_config(self):
        from workbench.config import EncDecConfig
        return EncDecConfig(encoder=self.gemma_config(), decoder=self.gemma_config())


def bf16_config(cfg, dtype: str = "bfloat16"):
    """A decoder's `GemmaConfig` or an `EncDecConfig` with `dtype` activations (both stacks)."""
    if hasattr(cfg, "encoder"):
        return cfg.replace(encoder=cfg.encoder.replace(dtype=dtype), decoder=cfg.decoder.replace(dtype=dtype))
    return cfg.replace(dtype=dtype)


FULL = Setup()
QUICK = Setup(vocab=512, d=64, layers=2, ffn=128, heads=2, head_dim=32, kv_heads=1, window=16, batch=2, seq=32)


def load_note() -> str:
    """1/5/15-minute load averages and the busiest other processes (a shared machine's noise)."""
    la = os.getloadavg()
    note = f"loadavg {la[0]:.2f} {la[1]:.2f} {la[2]:.2f} on {os.cpu_count()} cores"
    try:
        import subprocess
        out = subprocess.run(["ps", "-eo", "pcpu,comm", "--sort=-pcpu", "--no-headers"], capture_output=True,
                             text=True, timeout=5).stdout.split("\n")[:4]
        note += "; top: " + ", ".join(" ".join(x.split()) for x in out if x.strip())
    except Exception:  # noqa: BLE001 - informational only
        pass
    return note


def loaded_before() -> bool:
    """True when the 1-minute load average exceeds the core count: figures from such a run are not quiet."""
    return os.getloadavg()[0] > (os.cpu_count() or 1)


def ratio_line(name: str, ratios: dict[str, float], loaded: bool) -> str:
    """`name decoder=X encdec=Y`, with ` loaded` appended when the run started on a loaded machine (such a
    figure must not be published)."""
    fmt = lambda k: f"{ratios[k]:.2f}" if k in ratios else "nan"  # noqa: E731
    return f"{name} decoder={fmt('decoder')} encdec={fmt('encdec')}" + (" loaded" if loaded else "")


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


# ------------------------------------------------------------------------------------------- workers
def _serve(conn, factory: Callable[..., Callable[[], None]], env: dict[str, str], args: tuple) -> None:
    """Worker main: set env, build the step (compile + warm-up), then time blocks of steps on request."""
    os.environ.update(env)
    try:
        t0 = time.perf_counter()
        step, info = _split(factory(*args))
        conn.send(("ready", (time.perf_counter() - t0, info)))
        while True:
            n = conn.recv()
            if n is None:
                break
            times = []
            for _ in range(n):
                w, c = time.perf_counter(), time.process_time()
                step()
                times.append((time.perf_counter() - w, time.process_time() - c))
            conn.send(("times", times))
    except Exception as e:  # noqa: BLE001 - report to the parent, which raises
        import traceback
        conn.send(("error", f"{e!r}\n{traceback.format_exc()}"))
    finally:
        conn.close()


def _split(made: Any) -> tuple[Callable[[], None], Any]:
    """A factory returns a step, or (step, info) where info (picklable) goes back to the parent."""
    return made if isinstance(made, tuple) else (made, None)


class Worker:
    """A system under test in its own process; `factory(*args)` returns a zero-argument step callable
    (or `(step, info)`); `setup_s` is the factory's time (build, compile, warm-up)."""

    def __init__(self, name: str, factory: Callable[..., Callable[[], None]], args: tuple = (),
                 env: dict[str, str] | None = None):
        self.name = name
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, factory, env or {}, args), daemon=True)
        self.proc.start()
        self.setup_s, self.info = self._recv()
        self.times: list[tuple[float, float]] = []

    def _recv(self) -> Any:
        kind, payload = self.conn.recv()
        if kind == "error":
            raise RuntimeError(f"worker {self.name} failed:\n{payload}")
        return payload

    def run(self, n: int) -> None:
        self.conn.send(n)
        self.times.extend(self._recv())

    def close(self) -> None:
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.proc.kill()

    @property
    def wall(self) -> float:
        return median([w for w, _ in self.times])

    @property
    def cpu(self) -> float:
        return median([c for _, c in self.times])


def interleave(workers: list[Worker], rounds: int, steps: int) -> None:
    """Round-robin: each worker runs `steps` steps per round, in a rotating order."""
    for r in range(rounds):
        order = workers[r % len(workers):] + workers[:r % len(workers)]
        for w in order:
            w.run(steps)


def tmpdir(prefix: str) -> str:
    return tempfile.mkdtemp(prefix=prefix)


def jax_env(devices: int = 1, eigen: bool = True, extra: str = "") -> dict[str, str]:
    """Environment of a JAX worker: CPU platform, `devices` host devices (data parallel, one per core),
    `eigen=False` single-threads each device's Eigen matmuls (the devices then give the parallelism)."""
    flags = [f"--xla_force_host_platform_device_count={devices}"]
    if not eigen:
        flags.append("--xla_cpu_multi_thread_eigen=false")
    if extra:
        flags.append(extra)
    return {"JAX_PLATFORMS": "cpu", "XLA_FLAGS": " ".join(flags)}


def torch_env(threads: int, cache_dir: str) -> dict[str, str]:
    return {"TORCHINDUCTOR_CACHE_DIR": cache_dir, "OMP_NUM_THREADS": str(threads),
            "TRANSFORMERS_VERBOSITY": "error", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def trace_events(folder: str) -> list[tuple[str, str, float]]:
    """(process name, event name, microseconds) of every complete ('X') event in the perfetto trace(s) that
    `jax.profiler.trace(folder, create_perfetto_trace=True)` wrote under `folder`."""
    import glob
    import gzip
    import json

    out = []
    for path in glob.glob(f"{folder}/**/*.trace.json.gz", recursive=True):
        with gzip.open(path, "rt") as f:
            events = json.load(f)
        events = events.get("traceEvents", events) if isinstance(events, dict) else events
        procs = {e["pid"]: e.get("args", {}).get("name", "") for e in events
                 if e.get("ph") == "M" and e.get("name") == "process_name"}
        out += [(procs.get(e.get("pid"), ""), e.get("name", "?"), float(e.get("dur", 0.0)))
                for e in events if e.get("ph") == "X"]
    return out
