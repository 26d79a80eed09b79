"""workbench.clock: seconds by kind, training FLOP/s against the peak, and clear errors."""

import time

import pytest

from workbench.clock import Clock


def test_clock_accumulates_by_kind():
    clock = Clock(peak_flops=1e9)
    with clock("train", flops=2e7):
        time.sleep(0.02)
    with clock("train") as span:  # flops known only at the end of the call
        time.sleep(0.02)
        span.flops = 2e7
    with clock("eval"):
        time.sleep(0.01)
    time.sleep(0.02)  # overhead: outside every measured call
    s = clock.summary()
    assert 0.035 < s["train_seconds"] < 0.2 and 0.005 < s["eval_seconds"] < 0.1 and s["generate_seconds"] == 0
    assert s["wall_seconds"] >= s["train_seconds"] + s["eval_seconds"] + 0.015
    assert 0 < s["fraction_in_steps"] < 1
    assert s["train_flops_per_s"] == pytest.approx(4e7 / s["train_seconds"])
    assert s["train_fraction_of_peak"] == pytest.approx(s["train_flops_per_s"] / 1e9)


def test_a_failing_block_is_still_timed_and_raises():
    clock = Clock()
    with pytest.raises(RuntimeError), clock("eval"):
        time.sleep(0.01)
        raise RuntimeError("boom")
    s = clock.summary()
    assert s["eval_seconds"] > 0.005 and "train_flops_per_s" not in s and "matmul_peak_flops" not in s


def test_bad_input():
    with pytest.raises(ValueError, match="kind"):
        with Clock()("training"):
            pass
    with pytest.raises(ValueError, match="flops"):
        with Clock()("train", flops=-1):
            pass
    with pytest.raises(ValueError, match="peak_flops"):
        Clock(peak_flops=0)
