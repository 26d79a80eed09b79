"""Trainer behaviour on a tiny causal LM: learning, grad accumulation, freezing, NaN stop, CLI."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _lm import LOSS, flat

from workbench.recipes import row_batches as array_batches
from workbench.train import Stepper, TrainConfig, make_optimizer, train
from workbench.train.checkpoint import manager, restore_params
from workbench.train.loop import make_step


def test_loss_decreases(tmp_path, params0, tokens):
    cfg = TrainConfig(steps=30, learning_rate=1e-2, warmup_steps=3, checkpoint_every=100, weight_decay=0.01)
    res = train(LOSS, params0, array_batches(tokens, 8), cfg, out_dir=str(tmp_path), progress=False,
                flops_per_token=1e3, peak_flops=1e12)
    losses = [h["loss"] for h in res.history]
    assert [h["step"] for h in res.history] == list(range(30))
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.5, losses
    assert {"lr", "grad_norm", "tokens_per_s", "mfu", "accuracy", "tokens"} <= set(res.history[0])
    assert (tmp_path / "metrics.csv").read_text().count("\n") == 31
    assert res.step == 30 and manager(res.checkpoint_dir).latest_step() == 30
    assert res.start_step == 0 and res.steps_run == 30


def test_steps_run_counts_only_this_calls_updates(tmp_path, params0, tokens):
    """A resumed call reports the step it resumed from; a finished run found again ran 0 updates."""
    cfg = TrainConfig(steps=4, learning_rate=1e-2, warmup_steps=1, checkpoint_every=2)
    first = train(LOSS, params0, array_batches(tokens, 8), cfg, out_dir=str(tmp_path), progress=False)
    assert (first.start_step, first.steps_run) == (0, 4)
    more = train(LOSS, params0, array_batches(tokens, 8), cfg.replace(steps=6), out_dir=str(tmp_path),
                 progress=False, allow_config_change=True)
    assert (more.start_step, more.steps_run, more.step) == (4, 2, 6)
    again = train(LOSS, params0, array_batches(tokens, 8), cfg.replace(steps=6), out_dir=str(tmp_path),
                  progress=False, allow_config_change=True)
    assert (again.start_step, again.steps_run) == (6, 0)


def test_run_without_checkpoints_matches_and_writes_none(tmp_path, params0, tokens):
    """checkpoints=False: the same updates as a checkpointed run, metrics recorded, no checkpoint on disk."""
    cfg = TrainConfig(steps=4, learning_rate=1e-2, warmup_steps=1, checkpoint_every=2)
    kept = train(LOSS, params0, array_batches(tokens, 8), cfg, out_dir=str(tmp_path / "a"), progress=False)
    bare = train(LOSS, params0, array_batches(tokens, 8), cfg, out_dir=str(tmp_path / "b"), progress=False,
                 checkpoints=False)
    for k, v in flat(kept.params).items():
        np.testing.assert_array_equal(flat(bare.params)[k], v, err_msg=k)
    assert [h["loss"] for h in bare.history] == [h["loss"] for h in kept.history]
    assert not (tmp_path / "b" / "checkpoints").exists() and (tmp_path / "b" / "metrics.csv").is_file()
    with pytest.raises(ValueError, match="keep_last_k"):
        train(LOSS, params0, array_batches(tokens, 8), cfg.replace(keep_last_k=2), out_dir=str(tmp_path / "c"),
              progress=False, checkpoints=False)


def test_stepper_is_the_trainers_update(tmp_path, params0, tokens):
    """The benchmarks time `Stepper` directly: two of its updates equal two updates of `train`."""
    cfg = TrainConfig(steps=2, learning_rate=1e-2, warmup_steps=1, grad_accum=2, checkpoint_every=2)
    res = train(LOSS, params0, array_batches(tokens, 8), cfg, out_dir=str(tmp_path), progress=False)
    stepper = Stepper(LOSS, cfg, params0)
    state, get = stepper.init(params0), array_batches(tokens, 8)
    for i in range(2):
        state, mets = stepper(state, stepper.batch(get(i)))
        assert float(mets["loss"]) == res.history[i]["loss"]
    for k, v in flat(res.params).items():
        np.testing.assert_array_equal(flat(state["params"])[k], v, err_msg=k)
    assert int(state["step"]) == 2 and all(np.isfinite(v).all() for v in flat(params0).values())  # not donated


def _one_step(cfg, params, batch_AxBxL):
    tx = make_optimizer(cfg, params)
    state = {"params": params, "opt_state": tx.init(params), "step": jnp.int32(0)}
    return jax.jit(make_step(LOSS, cfg, params, tx))(state, batch_AxBxL)


def test_grad_accumulation_equals_double_batch(params0, tokens):
    cfg = TrainConfig(steps=10, learning_rate=1e-2, warmup_steps=0, weight_decay=0.1)
    full, m1 = _one_step(cfg, params0, {"tokens": tokens[None, :8]})
    acc, m2 = _one_step(cfg.replace(grad_accum=2), params0, {"tokens": tokens[:8].reshape(2, 4, -1)})
    assert abs(float(m1["loss"]) - float(m2["loss"])) <= 1e-6
    assert abs(float(m1["grad_norm"]) - float(m2["grad_norm"])) <= 1e-6 * float(m1["grad_norm"])
    for k, v in flat(full["params"]).items():
        np.testing.assert_allclose(flat(acc["params"])[k], v, atol=1e-6, rtol=0, err_msg=k)


def test_freeze_warmup_only_trains_trainable(params0, tokens):
    K = 3
    cfg = TrainConfig(steps=10, learning_rate=1e-2, warmup_steps=1, weight_decay=0.1, freeze_steps=K,
                      trainable=lambda p: "/cross_attn/" in p or "/mlp/" in p)
    tx = make_optimizer(cfg, params0)
    step = jax.jit(make_step(LOSS, cfg, params0, tx))
    state = {"params": params0, "opt_state": tx.init(params0), "step": jnp.int32(0)}
    frozen0 = jax.tree.map(np.asarray, state["opt_state"].inner_states["frozen"])
    get_batch = array_batches(tokens, 8)
    for i in range(K):
        state, _ = step(state, {"tokens": get_batch(i)["tokens"][None]})
    init, now = flat(params0), flat(state["params"])
    for k in init:
        if "/mlp/" in k:
            assert not np.array_equal(now[k], init[k]), k
        else:
            assert np.array_equal(now[k], init[k]), k  # bit-identical: no update, no weight decay
    for a, b in zip(jax.tree.leaves(state["opt_state"].inner_states["frozen"]), jax.tree.leaves(frozen0),
                    strict=True):
        assert np.array_equal(np.asarray(a), b)  # moments and count untouched
    state, _ = step(state, {"tokens": get_batch(K)["tokens"][None]})
    after = flat(state["params"])
    assert all(not np.array_equal(after[k], init[k]) for k in init if "/mlp/" not in k)


def test_nan_stops_with_clear_error_and_keeps_good_checkpoints(tmp_path, params0, tokens):
    n = 5
    base = array_batches(tokens, 8)

    def get_batch(step):
        return {**base(step), "poison": np.full((8,), step >= n)}

    def loss_fn(params, batch, rng):
        loss, mets = LOSS(params, batch, rng)
        return loss + jnp.where(jnp.any(batch["poison"]), jnp.nan, 0.0), mets

    cfg = TrainConfig(steps=10, learning_rate=1e-2, warmup_steps=1, checkpoint_every=2)
    with pytest.raises(FloatingPointError, match=rf"non-finite loss .* at step {n}; last good checkpoint: step 4"):
        train(loss_fn, params0, get_batch, cfg, out_dir=str(tmp_path), progress=False)
    ckdir = str(tmp_path / "checkpoints")
    steps = manager(ckdir).all_steps()
    assert steps and max(steps) <= n
    for s in steps:
        assert all(np.isfinite(x).all() for x in jax.tree.leaves(restore_params(ckdir, s)))


def test_nan_after_dead_updates_keeps_only_the_healthy_checkpoint_and_says_to_change_settings(tmp_path, params0,
                                                                                               tokens):
    """Updates 3-4 are already dead (loss 48, grad norm 0), NaN at 5: checkpoint 4 is not 'good', 2 is."""
    base = array_batches(tokens, 8)

    def get_batch(step):
        return {**base(step), "dead": np.full((8,), step >= 3), "poison": np.full((8,), step >= 5)}

    def loss_fn(params, batch, rng):
        loss, mets = LOSS(params, batch, rng)
        loss = jnp.where(jnp.any(batch["dead"]), 48.0 + 0.0 * jax.lax.stop_gradient(loss), loss)
        return loss + jnp.where(jnp.any(batch["poison"]), jnp.nan, 0.0), mets

    cfg = TrainConfig(steps=10, learning_rate=1e-2, warmup_steps=1, checkpoint_every=2)
    for _ in range(2):  # a re-run with the same settings stops at the same step, with the same advice
        with pytest.raises(FloatingPointError) as e:
            train(loss_fn, params0, get_batch, cfg, out_dir=str(tmp_path), progress=False)
        msg = str(e.value)
        assert "non-finite loss (nan) at step 5; last good checkpoint: step 2" in msg
        assert "running it again with the same settings stops here again" in msg and "allow_config_change" in msg
        assert manager(str(tmp_path / "checkpoints")).all_steps() == [2]
    assert "checkpoints 4 came after the first unhealthy update, step 3: loss 48.0, grad norm 0.0" in msg
    assert (tmp_path / "diverged-checkpoints" / "4").is_dir()


def test_cli_help():
    out = subprocess.run([sys.executable, "-m", "workbench.train", "--help"], capture_output=True, text=True,
                         check=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert "--out-dir" in out.stdout and "jax.distributed.initialize" in out.stdout


def test_bf16_compute_adafactor_keeps_fp32_master(params0, tokens):
    cfg = TrainConfig(steps=10, learning_rate=1e-2, warmup_steps=0)
    batch = {"tokens": tokens[None, :8]}
    ref, m32 = _one_step(cfg, params0, batch)
    new, m16 = _one_step(cfg.replace(compute_dtype="bfloat16", optimizer="adafactor"), params0, batch)
    assert abs(float(m16["loss"]) - float(m32["loss"])) < 0.05
    assert all(x.dtype == jnp.float32 and bool(jnp.isfinite(x).all()) for x in jax.tree.leaves(new["params"]))
    assert any(not np.array_equal(a, b) for a, b in zip(jax.tree.leaves(new["params"]),
                                                       jax.tree.leaves(params0), strict=True))


def test_cli_pretrains_then_adapts(tmp_path, monkeypatch):
    """`workbench train`: causal pretraining saved to the model store, then PrefixLM+KD adaptation from it."""
    from workbench import zoo
    from workbench.config import EncDecConfig
    from workbench.train.cli import main

    monkeypatch.setenv("WORKBENCH_MODELS", str(tmp_path / "zoo"))
    data = tmp_path / "tokens.npy"
    np.save(data, np.random.default_rng(0).integers(3, 200, (32, 16)).astype(np.int32))
    common = ["--data", str(data), "--steps", "2", "--batch", "4", "--warmup", "1", "--no-progress"]
    assert main(["--out-dir", str(tmp_path / "pre"), "--preset", "tiny", "--vocab-size", "256",
                 "--save-as", "dec", *common]) == 0
    assert main(["--out-dir", str(tmp_path / "ad"), "--objective", "prefixlm", "--init-from", "dec",
                 "--kd-weight", "0.5", "--save-as", "ed", *common]) == 0
    cfg, params = zoo.load("ed")
    assert isinstance(cfg, EncDecConfig) and cfg.decoder.vocab_size == 256
    assert "cross_attn" in params["decoder"]["layer_0"]


def test_seeds_of_one_program_compile_once(params0, tokens):
    """A Stepper for another seed reuses the compiled step (no new trace) yet follows its own seed exactly as
    the uncached `make_step` does; another schedule is another program."""
    traces = []

    def noisy(params, batch, rng):
        traces.append(1)
        loss, mets = LOSS(params, batch, rng)
        return loss + 1e-2 * jax.random.normal(rng), mets  # the key reaches the loss, as dropout does

    cfg = TrainConfig(steps=4, learning_rate=1e-2, warmup_steps=1)
    get = array_batches(tokens, 8)
    losses = {}
    for seed in (0, 1):
        stepper = Stepper(noisy, cfg.replace(seed=seed, checkpoint_every=7), params0)
        state = stepper.init(params0)
        state, mets = stepper(state, stepper.batch(get(0)))
        losses[seed] = float(mets["loss"])
        if seed == 0:
            n_traces = len(traces)
            assert n_traces >= 1
    assert len(traces) == n_traces, "the second seed traced the step again"
    assert losses[0] != losses[1]
    tx = make_optimizer(cfg, params0)
    plain = {"params": params0, "opt_state": tx.init(params0), "step": jnp.int32(0)}
    _, ref = jax.jit(make_step(noisy, cfg.replace(seed=1), params0, tx))(plain, {"tokens": get(0)["tokens"][None]})
    assert float(ref["loss"]) == losses[1]
    n_traces = len(traces)
    other = Stepper(noisy, cfg.replace(learning_rate=2e-2), params0)
    other(other.init(params0), other.batch(get(0)))
    assert len(traces) > n_traces
