"""Schedule formula, masks, logical axes and fallback, EMA/averaging arithmetic, checkpoint round trip."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AbstractMesh, PartitionSpec

from workbench.train import TrainConfig, average_checkpoints, decay_mask, ema_update, logical_axes, schedule
from workbench.train import checkpoint as ckpt
from workbench.train.optim import make_optimizer
from workbench.train.sharding import AXES, DEFAULT_RULES, spec_for


@pytest.mark.parametrize("kind", ["cosine", "linear", "constant"])
def test_schedule_matches_hand_formula(kind):
    peak, W, T, frac = 1e-3, 10, 110, 0.1
    lr = schedule(TrainConfig(steps=T, learning_rate=peak, warmup_steps=W, schedule=kind, end_lr_fraction=frac))
    end = peak * frac
    assert float(lr(0)) == pytest.approx(peak / W, rel=1e-6)
    assert float(lr(4)) == pytest.approx(peak * 5 / W, rel=1e-6)
    assert float(lr(W - 1)) == pytest.approx(peak, rel=1e-6)
    t = (60 - W) / (T - W - 1)
    want = {"cosine": end + (peak - end) * 0.5 * (1 + math.cos(math.pi * t)),
            "linear": peak + (end - peak) * t, "constant": peak}[kind]
    assert float(lr(60)) == pytest.approx(want, rel=1e-5)
    assert float(lr(T - 1)) == pytest.approx(peak if kind == "constant" else end, rel=1e-5)


def test_decay_mask_skips_norms_embeddings_biases(params0):
    mask = decay_mask({**params0, "head": {"bias": jnp.zeros(2), "kernel": jnp.zeros((4, 2))}})
    assert mask["layer_0"]["attn"]["q_proj"]["kernel"] and mask["head"]["kernel"]
    assert not mask["embedder"]["embedding"] and not mask["final_norm"]["scale"] and not mask["head"]["bias"]
    assert decay_mask(params0, decay_embeddings=True)["embedder"]["embedding"]


def test_logical_axes_and_fallback(params0):
    ax = logical_axes(params0)
    assert ax["embedder"]["embedding"] == ("vocab", "embed")
    assert ax["layer_0"]["attn"]["k_proj"]["kernel"] == ("embed", "kv_heads")
    assert ax["layer_0"]["attn"]["o_proj"]["kernel"] == ("heads", "embed")
    assert ax["layer_0"]["mlp"]["down_proj"]["kernel"] == ("mlp", "embed")
    assert ax["final_norm"]["scale"] == ("embed",)
    mesh = AbstractMesh((2, 4, 1), AXES)
    assert spec_for((64, 32), ("vocab", "embed"), mesh, DEFAULT_RULES) == PartitionSpec(None, "fsdp")
    assert spec_for((30, 6), ("embed", "mlp"), mesh, DEFAULT_RULES) == PartitionSpec(None, None)  # 30 % 4 != 0
    mesh = AbstractMesh((2, 2, 2), AXES)
    assert spec_for((8, 16), ("embed", "heads"), mesh, DEFAULT_RULES) == PartitionSpec("fsdp", "tensor")
    assert spec_for((8,), ("batch",), mesh, DEFAULT_RULES) == PartitionSpec(("data", "fsdp"))


def test_ema_arithmetic():
    ema = {"a": jnp.array([0.0, 10.0])}
    for p in ([1.0, 0.0], [3.0, 0.0]):
        ema = ema_update(ema, {"a": jnp.array(p)}, 0.5)
    np.testing.assert_allclose(ema["a"], [0.5 * (0.5 * 0 + 0.5 * 1) + 0.5 * 3, 2.5], rtol=1e-7)


def test_average_checkpoints_arithmetic(tmp_path):
    mgr = ckpt.manager(str(tmp_path), max_to_keep=5)
    for s, v in ((1, 100.0), (2, 1.0), (3, 2.0), (4, 6.0)):
        ckpt.save(mgr, s, {"params": {"w": jnp.full((2, 3), v), "b": {"c": jnp.array([v, -v])}}})
    mgr.close()
    avg = average_checkpoints(str(tmp_path), 3)
    np.testing.assert_array_equal(avg["w"], np.full((2, 3), 3.0, np.float32))
    np.testing.assert_array_equal(avg["b"]["c"], np.array([3.0, -3.0], np.float32))
    assert avg["w"].dtype == np.float32


def test_checkpoint_round_trip_is_exact(tmp_path, params0):
    cfg = TrainConfig(steps=4, weight_decay=0.1, freeze_steps=2, trainable=lambda p: "/mlp/" in p)
    tx = make_optimizer(cfg, params0)
    grads = jax.tree.map(lambda x: jnp.sin(x) + 0.1, params0)
    opt = tx.init(params0)
    _, opt = tx.update(grads, opt, params0)
    state = {"params": params0, "opt_state": opt, "ema": jax.tree.map(lambda x: x * 0.5, params0),
             "step": jnp.int32(7)}
    mgr = ckpt.manager(str(tmp_path))
    ckpt.save(mgr, 7, state)
    mgr.close()
    (tmp_path / "9.orbax-checkpoint-tmp-1234").mkdir()  # what a save killed mid-write leaves behind
    mgr = ckpt.manager(str(tmp_path))
    assert mgr.latest_step() == 7 and mgr.all_steps() == [7]  # the unfinished tmp dir is never a step
    blank = jax.tree.map(jnp.zeros_like, state)
    got = ckpt.restore(mgr, mgr.latest_step(), blank)
    assert jax.tree.structure(got) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(state), strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
