"""The trainer: one jitted, sharded step over dict pytrees; orbax checkpoints; exact resume; metrics.

Contract: `loss_fn(params, batch, rng) -> (loss, {name: scalar})`, `get_batch(step) -> {name: np.ndarray}`
deterministic in `step` (under multi-host: this process's slice of the global batch). The dropout key of
update i is `fold_in(fold_in(key(seed), i), micro_batch)`, so (params, opt state, EMA, step) is the whole
state: resuming from a checkpoint replays exactly what an uninterrupted run would have done.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from workbench.train import checkpoint as ckpt
from workbench.train import optim
from workbench.train import sharding as shd
from workbench.train.config import TrainConfig
from workbench.train.metrics import MetricsWriter

LossFn = Callable[[Any, dict, jax.Array], tuple[jax.Array, dict]]
Callback = Callable[[int, dict, dict], None]


@dataclasses.dataclass
class TrainResult:
    params: Any
    ema_params: Any | None
    averaged_params: Any | None  # mean of the last `keep_last_k` checkpoints (when keep_last_k > 1)
    history: list[dict]
    step: int  # number of completed updates
    checkpoint_dir: str


def _cast(tree: Any, dtype) -> Any:
    return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def make_step(loss_fn: LossFn, cfg: TrainConfig, params: Any, tx) -> Callable:
    """Pure `step(state, batch_AxBx...) -> (state, metrics)`; batch leaves carry a leading micro-batch axis."""
    lr_fn = optim.schedule(cfg)
    tmask = optim.trainable_mask(params, cfg)
    freezing = cfg.freeze_steps > 0 and cfg.trainable is not None
    compute = jnp.bfloat16 if cfg.compute_dtype == "bfloat16" else None
    base_key = jax.random.key(cfg.seed)

    def micro(p, mb, rng):
        return loss_fn(_cast(p, compute) if compute is not None else p, mb, rng)

    grad_fn = jax.value_and_grad(micro, has_aux=True)

    def step(state, batch):
        i, p = state["step"], state["params"]
        rng = jax.random.fold_in(base_key, i)
        (loss, mets), grads = grad_fn(p, jax.tree.map(lambda x: x[0], batch), jax.random.fold_in(rng, 0))
        A = cfg.grad_accum
        if A > 1:
            def body(carry, xs):
                mb, j = xs
                (l_, m_), g_ = grad_fn(p, mb, jax.random.fold_in(rng, j))
                return jax.tree.map(jnp.add, carry, (l_, m_, g_)), None
            rest = (jax.tree.map(lambda x: x[1:], batch), jnp.arange(1, A))
            (loss, mets, grads), _ = jax.lax.scan(body, (loss, mets, grads), rest)
            loss, mets, grads = jax.tree.map(lambda x: x / A, (loss, mets, grads))
        frozen = i < cfg.freeze_steps
        if freezing:
            grads = jax.tree.map(lambda g, t: g if t else jnp.where(frozen, jnp.zeros_like(g), g), grads, tmask)
        grads, gnorm = optim.clip_by_global_norm(grads, cfg.clip_norm)
        updates, opt_state = tx.update(grads, state["opt_state"], p)
        lr = lr_fn(i)
        new_p = jax.tree.map(lambda x, u: (x - lr * u).astype(x.dtype), p, updates)
        if freezing:
            new_p = jax.tree.map(lambda n, o, t: n if t else jnp.where(frozen, o, n), new_p, p, tmask)
            old = state["opt_state"].inner_states["frozen"]
            kept = jax.tree.map(lambda o, n: jnp.where(frozen, o, n), old, opt_state.inner_states["frozen"])
            opt_state = opt_state._replace(inner_states={**opt_state.inner_states, "frozen": kept})
        new = {"params": new_p, "opt_state": opt_state, "step": i + 1}
        if "ema" in state:
            new["ema"] = optim.ema_update(state["ema"], new_p, cfg.ema_decay)
        return new, {**mets, "loss": loss, "lr": lr, "grad_norm": gnorm}

    return step


def _default_tokens(batch: dict) -> int | None:
    for keys in (("tokens",), ("inputs", "targets"), ("enc_tokens", "dec_tokens")):
        if all(k in batch for k in keys):
            return int(sum(np.asarray(batch[k]).size for k in keys))
    return None


@jax.jit
def _finite(tree: Any) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def _all_finite(tree: Any) -> bool:
    return bool(jax.device_get(_finite(tree)))


def train(loss_fn: LossFn, params: Any, get_batch: Callable[[int], dict], config: TrainConfig, *,
          out_dir: str | None = None, flops_per_token: float | None = None,
          tokens_per_batch_fn: Callable[[dict], int] | None = None, peak_flops: float | None = None,
          callbacks: Sequence[Callback] = (), progress: bool = True,
          rules: shd.Rules | None = None) -> TrainResult:
    """Train (or resume) and return the final state. See the module and `TrainConfig` docs.

    Resumes from the latest complete checkpoint under `<out_dir>/checkpoints`. Raises `FloatingPointError`
    on a non-finite loss or grad norm (no checkpoint of the bad step is written). `peak_flops` is the summed
    peak of all devices used; MFU = flops_per_token * tokens/s / peak_flops. Callbacks get
    `(step, record, state)` after every update.
    """
    cfg = config
    out_dir = out_dir or cfg.out_dir
    if out_dir is None:
        raise ValueError("train: out_dir is required (argument or TrainConfig.out_dir)")
    os.makedirs(out_dir, exist_ok=True)
    lead = jax.process_index() == 0
    ckpt_dir = os.path.join(out_dir, "checkpoints")
    mesh = shd.make_mesh(*(cfg.mesh_shape or (jax.device_count(), 1, 1)))
    replicated = NamedSharding(mesh, PartitionSpec())

    p_shard = shd.param_shardings(params, mesh, rules)
    params = jax.device_put(params, p_shard, may_alias=False)  # never donate the caller's arrays
    tx = optim.make_optimizer(cfg, params)
    o_shard = shd.like_params_shardings(jax.eval_shape(tx.init, params), params, p_shard, mesh)
    state = {"params": params, "opt_state": jax.jit(tx.init, out_shardings=o_shard)(params),
             "step": jax.device_put(jnp.zeros((), jnp.int32), replicated)}
    s_shard = {"params": p_shard, "opt_state": o_shard, "step": replicated}
    if cfg.ema_decay is not None:
        state["ema"] = jax.jit(lambda p: jax.tree.map(jnp.copy, p), out_shardings=p_shard)(params)
        s_shard["ema"] = p_shard

    mgr = ckpt.manager(ckpt_dir, max_to_keep=max(cfg.max_to_keep, cfg.keep_last_k))
    start = mgr.latest_step() or 0
    if start:
        state = ckpt.restore(mgr, start, state)
    last_saved = start if start else None
    writer = MetricsWriter(out_dir, start) if lead else None
    if lead:
        with open(os.path.join(out_dir, "train_config.json"), "w") as f:
            json.dump(cfg.to_json(), f, indent=1)

    step_fn = None
    A = cfg.grad_accum
    bar = tqdm(total=cfg.steps, initial=start, disable=not progress, desc="train", dynamic_ncols=True)
    try:
        for i in range(start, cfg.steps):
            t0 = time.perf_counter()
            raw = get_batch(i)
            ntok = (tokens_per_batch_fn or _default_tokens)(raw)

            def split(x):
                x = np.asarray(x)
                if x.shape[0] % A:
                    raise ValueError(f"batch size {x.shape[0]} is not divisible by grad_accum={A}")
                return x.reshape(A, x.shape[0] // A, *x.shape[1:])

            local = {k: split(v) for k, v in raw.items()}
            b_shard = {k: shd.batch_sharding(mesh, v.ndim, rules, batch_axis=1,
                                             batch_size=v.shape[1] * jax.process_count())
                       for k, v in local.items()}
            batch = {k: jax.make_array_from_process_local_data(b_shard[k], v) for k, v in local.items()}
            if step_fn is None:
                step_fn = jax.jit(make_step(loss_fn, cfg, params, tx), in_shardings=(s_shard, b_shard),
                                  out_shardings=(s_shard, replicated), donate_argnums=0)
            state, mets = step_fn(state, batch)
            mets = {k: float(v) for k, v in jax.device_get(mets).items()}
            dt = time.perf_counter() - t0
            for name in ("loss", "grad_norm"):
                if not math.isfinite(mets[name]):
                    where = f"step {last_saved} in {ckpt_dir}" if last_saved else "none saved"
                    raise FloatingPointError(f"non-finite {name} ({mets[name]}) at step {i}; "
                                             f"last good checkpoint: {where}")
            rec = {"step": i, "loss": mets.pop("loss"), "lr": mets.pop("lr"), "grad_norm": mets.pop("grad_norm"),
                   "step_time_s": dt}
            if ntok is not None:
                rec["tokens_per_s"] = ntok * jax.process_count() / dt
                if flops_per_token and peak_flops:
                    rec["mfu"] = flops_per_token * rec["tokens_per_s"] / peak_flops
            rec.update(mets)
            if writer is not None and (i % cfg.log_every == 0 or i == cfg.steps - 1):
                writer.write(rec)
            for cb in callbacks:
                cb(i, rec, state)
            bar.update(1)
            bar.set_postfix(loss=f"{rec['loss']:.4f}", lr=f"{rec['lr']:.2e}")
            done = i + 1
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                if not _all_finite(state["params"]):
                    raise FloatingPointError(f"non-finite params after step {i}; not saved; last good "
                                             f"checkpoint: step {last_saved}")
                ckpt.save(mgr, done, state)
                last_saved = done
    finally:
        bar.close()
        if writer is not None:
            writer.close()
        mgr.close()

    averaged = ckpt.average_checkpoints(ckpt_dir, cfg.keep_last_k) if cfg.keep_last_k > 1 else None
    history = writer.history if writer is not None else []
    return TrainResult(params=state["params"], ema_params=state.get("ema"), averaged_params=averaged,
                       history=history, step=int(jax.device_get(state["step"])), checkpoint_dir=ckpt_dir)
