"""Where a notebook's wall time goes: seconds inside training / evaluation calls and the training FLOP/s.

    CLOCK = Clock(peak_flops=flops.matmul_peak()[0])       # at the top of the notebook
    with CLOCK("train") as span:
        run = train(...)
        span.flops = run.steps_run * tokens_per_step * flops_per_token   # steps resumed from a checkpoint: 0
    with CLOCK("eval"):
        loss = evaluate.eval_loss(...)
    metrics["utilisation"] = CLOCK.summary()                # in the last cell

`summary()` gives the wall time since the clock started, the seconds inside each kind of call and their share of
the wall time (`fraction_in_steps`: train + eval + generate), and the training calls' matmul FLOP/s (compilation
and the trainer's bookkeeping included) against the peak measured at the start.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator

KINDS = ("train", "eval", "generate")


@dataclasses.dataclass
class Span:
    """One measured call; set `flops` inside the block once known (e.g. from the steps a resumed run really did)."""

    flops: float = 0.0


class Clock:
    """Accumulates the seconds of measured calls by kind, and the matmul FLOPs of the training ones."""

    def __init__(self, peak_flops: float | None = None):
        if peak_flops is not None and not peak_flops > 0:
            raise ValueError(f"peak_flops must be > 0, got {peak_flops!r}")
        self.peak_flops = peak_flops
        self.start = time.perf_counter()
        self.seconds = dict.fromkeys(KINDS, 0.0)
        self.train_flops = 0.0

    @contextlib.contextmanager
    def __call__(self, kind: str, flops: float = 0.0) -> Iterator[Span]:
        """Time the block as `kind` ('train', 'eval' or 'generate'); `flops` (or the yielded span's `flops`, set
        inside the block): the matmul FLOPs it performed (train)."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        span = Span(flops)
        t0 = time.perf_counter()
        try:
            yield span
        finally:
            self.seconds[kind] += time.perf_counter() - t0
        if span.flops < 0:
            raise ValueError(f"flops must be >= 0, got {span.flops!r}")
        if kind == "train":
            self.train_flops += span.flops

    def summary(self) -> dict[str, float]:
        wall = time.perf_counter() - self.start
        inside = sum(self.seconds.values())
        out = {"wall_seconds": wall, **{f"{k}_seconds": v for k, v in self.seconds.items()},
               "fraction_in_steps": inside / wall if wall > 0 else 0.0}
        if self.seconds["train"] > 0 and self.train_flops > 0:
            out["train_flops_per_s"] = self.train_flops / self.seconds["train"]
            if self.peak_flops:
                out["train_fraction_of_peak"] = out["train_flops_per_s"] / self.peak_flops
        if self.peak_flops:
            out["matmul_peak_flops"] = self.peak_flops
        return out
