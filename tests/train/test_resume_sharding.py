"""Subprocess tests: SIGKILL + resume equals an uninterrupted run; meshes on 8 fake CPU devices."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "_lm.py")
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}
STEPS = 30


def _launch(out, sleep=0.0):
    return subprocess.Popen([sys.executable, SCRIPT, "run", str(out), str(STEPS), "--sleep", str(sleep)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _complete_ckpts(out):
    d = os.path.join(out, "checkpoints")
    return [n for n in os.listdir(d) if n.isdigit()] if os.path.isdir(d) else []


@pytest.mark.slow
def test_sigkill_and_resume_matches_uninterrupted(tmp_path):
    ref, run = tmp_path / "ref", tmp_path / "run"
    ref_proc = _launch(ref)
    proc = _launch(run, sleep=0.1)
    deadline = time.time() + 120
    while not _complete_ckpts(run):
        assert proc.poll() is None, proc.communicate()[0]
        assert time.time() < deadline, "no checkpoint appeared"
        time.sleep(0.05)
    time.sleep(random.uniform(0.0, 1.0))  # an arbitrary point after the first checkpoint
    assert proc.poll() is None, "run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = max(int(s) for s in _complete_ckpts(run))
    assert killed_at < STEPS
    resumed = _launch(run)
    for p in (resumed, ref_proc):
        out = p.communicate(timeout=300)[0]
        assert p.returncode == 0, out
    a, b = np.load(ref / "final.npz"), np.load(run / "final.npz")
    assert sorted(a.files) == sorted(b.files) and any(k.startswith("ema/") for k in a.files)
    for k in a.files:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)  # bitwise
    steps = [json.loads(line)["step"] for line in open(run / "metrics.jsonl")]
    assert steps == list(range(STEPS))
    ref_loss = [json.loads(line)["loss"] for line in open(ref / "metrics.jsonl")]
    run_loss = [json.loads(line)["loss"] for line in open(run / "metrics.jsonl")]
    assert ref_loss == run_loss


@pytest.mark.slow
def test_meshes_match_one_device_and_fsdp_shards_params(tmp_path):
    env = {**ENV, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    out = subprocess.run([sys.executable, SCRIPT, "shard", str(tmp_path)], env=env, capture_output=True, text=True,
                         timeout=400)
    assert out.returncode == 0, out.stdout + out.stderr
    rep = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("REPORT "))[7:])
    ref = rep.pop("(1, 1, 1)")["loss"]
    replicated, fsdp = rep.pop("replicated_bytes"), rep.pop("fsdp_bytes")
    for mesh, r in rep.items():
        np.testing.assert_allclose(r["loss"], ref, atol=1e-5, rtol=0, err_msg=mesh)
    assert fsdp <= replicated / 7 and rep["(1, 8, 1)"]["bytes"] <= replicated / 7
    assert rep["(8, 1, 1)"]["bytes"] == replicated
