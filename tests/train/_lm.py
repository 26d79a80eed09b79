"""Tiny causal-LM setup shared by the train tests and their subprocesses.

As a script: `python tests/train/_lm.py run OUT STEPS [--sleep S]` trains and writes OUT/final.npz;
`python tests/train/_lm.py shard OUT` runs the mesh comparison (needs 8 fake devices via XLA_FLAGS).
"""

from __future__ import annotations

import json
import os
import sys
import time

import jax
import numpy as np

jax.config.update("jax_default_matmul_precision", "highest")
for _k, _v in (("jax_compilation_cache_dir", os.environ.get("JAX_COMPILATION_CACHE_DIR")),
               ("jax_persistent_cache_min_compile_time_secs", 0), ("jax_persistent_cache_min_entry_size_bytes", 0)):
    if _v is not None:
        jax.config.update(_k, _v)

from workbench import decoder  # noqa: E402
from workbench.config import GemmaConfig  # noqa: E402
from workbench.objectives import causal_lm_loss  # noqa: E402
from workbench.recipes import row_batches as array_batches  # noqa: E402
from workbench.train import TrainConfig, train  # noqa: E402

# Every dim divides by 8: vocab 64, embed 32, q 4x8=32, kv 2x8=16, mlp 64.
MODEL = GemmaConfig(vocab_size=64, num_layers=1, embed_dim=32, hidden_dim=64, num_heads=4, head_dim=8,
                    num_kv_heads=2, query_pre_attn_scalar=8, sliding_window=8)
LOSS = causal_lm_loss(MODEL)


def init_params(seed: int = 0):
    return jax.device_get(jax.jit(decoder.init, static_argnums=0)(MODEL, jax.random.key(seed)))


def token_data(n: int = 64, length: int = 13, seed: int = 0) -> np.ndarray:
    """Learnable random data: each row is an arithmetic progression mod 61 (+3), random start and stride."""
    rng = np.random.default_rng(seed)
    start, stride = rng.integers(0, 61, (n, 1)), rng.integers(1, 4, (n, 1))
    return ((start + stride * np.arange(length)) % 61 + 3).astype(np.int32)


def flat(tree) -> dict[str, np.ndarray]:
    from workbench.tree import path_str
    return {path_str(p): np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(tree)}


def _run(out: str, steps: int, sleep: float) -> None:
    cfg = TrainConfig(steps=steps, learning_rate=1e-2, warmup_steps=3, checkpoint_every=4, weight_decay=0.01,
                      ema_decay=0.9, seed=1)
    cb = [lambda *_: time.sleep(sleep)] if sleep else []
    res = train(LOSS, init_params(0), array_batches(token_data(), 8), cfg, out_dir=out, progress=False,
                callbacks=cb)
    np.savez(os.path.join(out, "final.npz"), **flat({"params": res.params, "ema": res.ema_params}))


def _shard(out: str) -> None:
    from workbench.train.sharding import make_mesh as mk
    from workbench.train.sharding import per_device_bytes, shard_params

    assert jax.device_count() == 8, jax.devices()
    p0, get_batch = init_params(0), array_batches(token_data(), 8)
    report = {}
    for mesh in [(1, 1, 1), (8, 1, 1), (1, 8, 1), (2, 2, 2)]:
        cfg = TrainConfig(steps=3, learning_rate=1e-2, warmup_steps=1, checkpoint_every=100, mesh_shape=mesh)
        if mesh == (1, 1, 1):  # the 1-device reference
            import workbench.train.loop as loop
            orig = loop.shd.make_mesh
            loop.shd.make_mesh = lambda *s: mk(*s, devices=jax.devices()[:1])
        res = train(LOSS, p0, get_batch, cfg, out_dir=os.path.join(out, "x".join(map(str, mesh))), progress=False)
        if mesh == (1, 1, 1):
            loop.shd.make_mesh = orig
        report[str(mesh)] = {"loss": [h["loss"] for h in res.history], "bytes": per_device_bytes(res.params)}
    report["replicated_bytes"] = per_device_bytes(shard_params(p0, mk(8, 1, 1)))
    report["fsdp_bytes"] = per_device_bytes(shard_params(p0, mk(1, 8, 1)))
    print("REPORT " + json.dumps(report))


if __name__ == "__main__":
    if sys.argv[1] == "run":
        _run(sys.argv[2], int(sys.argv[3]), float(sys.argv[5]) if len(sys.argv) > 5 else 0.0)
    else:
        _shard(sys.argv[2])
