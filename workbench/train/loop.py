"""The trainer: one jitted, sharded step over dict pytrees; orbax checkpoints; exact resume; metrics.

Contract: `loss_fn(params, batch, rng) -> (loss, {name: scalar})`, `get_batch(step) -> {name: np.ndarray}`
deterministic in `step` (under multi-host: this process's slice of the global batch). The dropout key of
update i is `fold_in(fold_in(key(seed), i), micro_batch)`, so (params, opt state, EMA, step) is the whole
state: resuming from a checkpoint replays exactly what an uninterrupted run would have done.

`<out_dir>/train_config.json` records the settings (`TrainConfig`, the caller's `run_info`, the parameter
shapes). Resuming with other settings raises `RunMismatchError` (one line naming the differences) unless
`allow_config_change=True`; a different parameter tree (another model) is always refused. Because the run is
deterministic, a diverged run (non-finite loss) would diverge again from any checkpoint with the same settings:
the error says so, keeps the last checkpoint whose updates were all healthy (finite loss, finite non-zero grad
norm) and moves later ones to `<out_dir>/diverged-checkpoints/`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from collections import OrderedDict
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
CONFIG_FILE = "train_config.json"
DIVERGED_DIR = "diverged-checkpoints"
# TrainConfig fields that do not change what the run computes: they may differ when a run is resumed.
BOOKKEEPING = frozenset({"log_every", "checkpoint_every", "keep_last_k", "max_to_keep", "out_dir", "mesh_shape"})


class RunMismatchError(ValueError):
    """`out_dir` holds a run made with other settings or another model than the ones given."""


@dataclasses.dataclass
class TrainResult:
    params: Any
    ema_params: Any | None
    averaged_params: Any | None  # mean of the last `keep_last_k` checkpoints (when keep_last_k > 1)
    history: list[dict]
    step: int  # number of completed updates
    checkpoint_dir: str
    start_step: int = 0  # the checkpoint step this call resumed from (0: trained from the start)

    @property
    def steps_run(self) -> int:
        """Updates this call performed (0 when it found the run finished)."""
        return self.step - self.start_step


def _cast(tree: Any, dtype) -> Any:
    return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def make_step(loss_fn: LossFn, cfg: TrainConfig, params: Any, tx) -> Callable:
    """Pure `step(state, batch_AxBx...) -> (state, metrics)`; batch leaves carry a leading micro-batch axis."""
    keyed = _keyed_step(loss_fn, cfg, params, tx)
    base_key = jax.random.key(cfg.seed)
    return lambda state, batch: keyed(state, batch, base_key)


def _keyed_step(loss_fn: LossFn, cfg: TrainConfig, params: Any, tx) -> Callable:
    """`step(state, batch, base_key)`: the seed enters as the key argument, so runs that differ only in
    `cfg.seed` (or bookkeeping) are one program."""
    lr_fn = optim.schedule(cfg)
    tmask = optim.trainable_mask(params, cfg)
    freezing = cfg.freeze_steps > 0 and cfg.trainable is not None
    compute = jnp.bfloat16 if cfg.compute_dtype == "bfloat16" else None

    def micro(p, mb, rng):
        return loss_fn(_cast(p, compute) if compute is not None else p, mb, rng)

    grad_fn = jax.value_and_grad(micro, has_aux=True)

    def step(state, batch, base_key):
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


class Stepper:
    """The trainer's update on a mesh: `train` runs it, and so do the benchmarks (no benchmark-only path).

    `init(params)` places a copy of the params and a fresh optimizer state (and EMA) on the mesh;
    `batch(raw)` splits a local batch into `grad_accum` micro-batches and shards it; calling the stepper
    runs `make_step` jitted once (params and optimizer state sharded by `rules`, the state donated) and
    returns (state, metrics on device). The jitted step is shared by Steppers of the same program (loss
    function object, `TrainConfig` but its seed and bookkeeping, parameter shapes, shardings): the seed is
    an argument, so the seeds of a study compile once."""

    def __init__(self, loss_fn: LossFn, config: TrainConfig, params: Any, rules: shd.Rules | None = None):
        cfg = self.config = config
        self.loss_fn, self.rules = loss_fn, rules
        self.mesh = shd.make_mesh(*(cfg.mesh_shape or (jax.device_count(), 1, 1)))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self.p_shard = shd.param_shardings(params, self.mesh, rules)
        self.tx = optim.make_optimizer(cfg, params)
        self.o_shard = shd.like_params_shardings(jax.eval_shape(self.tx.init, params), params, self.p_shard,
                                                 self.mesh)
        self.s_shard = {"params": self.p_shard, "opt_state": self.o_shard, "step": self.replicated}
        if cfg.ema_decay is not None:
            self.s_shard["ema"] = self.p_shard
        self._template = params
        self._key = jax.device_put(jax.random.key(cfg.seed), self.replicated)
        self._fn: Callable | None = None

    def init(self, params: Any) -> dict:
        """{'params', 'opt_state', 'step' (0)[, 'ema']} on the mesh; the caller's arrays are never donated."""
        params = jax.device_put(params, self.p_shard, may_alias=False)
        state = {"params": params, "opt_state": jax.jit(self.tx.init, out_shardings=self.o_shard)(params),
                 "step": jax.device_put(jnp.zeros((), jnp.int32), self.replicated)}
        if self.config.ema_decay is not None:
            state["ema"] = jax.jit(lambda p: jax.tree.map(jnp.copy, p), out_shardings=self.p_shard)(params)
        return state

    def batch(self, raw: dict) -> dict:
        """This process's batch {name: [B, ...]} as global arrays [grad_accum, B / grad_accum, ...]."""
        A = self.config.grad_accum

        def split(x):
            x = np.asarray(x)
            if x.shape[0] % A:
                raise ValueError(f"batch size {x.shape[0]} is not divisible by grad_accum={A}")
            return x.reshape(A, x.shape[0] // A, *x.shape[1:])

        local = {k: split(v) for k, v in raw.items()}
        shard = {k: shd.batch_sharding(self.mesh, v.ndim, self.rules, batch_axis=1,
                                       batch_size=v.shape[1] * jax.process_count()) for k, v in local.items()}
        return {k: jax.make_array_from_process_local_data(shard[k], v) for k, v in local.items()}

    def __call__(self, state: dict, batch: dict) -> tuple[dict, dict]:
        if self._fn is None:
            b_shard = {k: v.sharding for k, v in batch.items()}
            self._fn = _compiled_step(self, b_shard)
        return self._fn(state, batch, self._key)


# Jitted steps by program (`_program_key`): a Stepper for another seed, or a later run of the same loss
# function, model shapes and schedule, reuses the compiled step instead of tracing and compiling it again.
_STEPS: OrderedDict[tuple, Callable] = OrderedDict()
_STEPS_MAX = 16


def _program_key(stepper: Stepper, b_shard: dict) -> tuple | None:
    """What the compiled step depends on; None when part of it cannot be compared (custom sharding rules)."""
    if stepper.rules is not None:
        return None
    flat, tree = jax.tree.flatten(stepper._template)
    avals = tuple((tuple(x.shape), str(x.dtype)) for x in flat)
    program = stepper.config.replace(seed=0, **{f: TrainConfig.__dataclass_fields__[f].default
                                                 for f in BOOKKEEPING - {"mesh_shape"}})
    s_leaves = tuple(jax.tree.leaves(stepper.s_shard))
    return (stepper.loss_fn, program, tree, avals, s_leaves, tuple(sorted(b_shard.items())))


def _compiled_step(stepper: Stepper, b_shard: dict) -> Callable:
    key = _program_key(stepper, b_shard)
    if key is not None and key in _STEPS:
        _STEPS.move_to_end(key)
        return _STEPS[key]
    fn = jax.jit(_keyed_step(stepper.loss_fn, stepper.config, stepper._template, stepper.tx),
                 in_shardings=(stepper.s_shard, b_shard, stepper.replicated),
                 out_shardings=(stepper.s_shard, stepper.replicated), donate_argnums=0)
    if key is not None:
        _STEPS[key] = fn
        while len(_STEPS) > _STEPS_MAX:
            _STEPS.popitem(last=False)
    return fn


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


def _healthy(loss: Any, grad_norm: Any) -> bool:
    """An update is healthy when loss and grad norm are finite and the grad norm is non-zero (or the loss is 0)."""
    try:
        loss, grad_norm = float(loss), float(grad_norm)
    except (TypeError, ValueError):
        return False
    return math.isfinite(loss) and math.isfinite(grad_norm) and (grad_norm > 0.0 or loss == 0.0)


def _param_shapes(params: Any) -> dict[str, str]:
    from workbench.tree import path_str

    return {path_str(p): f"{tuple(x.shape)} {x.dtype}" for p, x in jax.tree_util.tree_leaves_with_path(params)}


def _jsonish(x: Any) -> Any:
    return json.loads(json.dumps(x, default=str))


def _short(x: Any) -> str:
    text = json.dumps(x, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _resume_check(saved: dict, record: dict, start: int, out_dir: str, allow_change: bool) -> list[dict]:
    """Compare the saved run record with this one; returns the accepted changes or raises RunMismatchError."""
    where = f"{out_dir} holds a run (checkpoint at step {start})"
    old_shapes, new_shapes = saved.get("param_shapes"), record["param_shapes"]
    if old_shapes is not None and old_shapes != new_shapes:
        missing = sorted(set(old_shapes) - set(new_shapes))
        extra = sorted(set(new_shapes) - set(old_shapes))
        shaped = sorted(k for k in set(old_shapes) & set(new_shapes) if old_shapes[k] != new_shapes[k])
        what = [f"{len(missing)} parameters only in the checkpoint (e.g. {missing[0]})" if missing else "",
                f"{len(extra)} only in this model (e.g. {extra[0]})" if extra else "",
                f"{len(shaped)} with other shapes (e.g. {shaped[0]}: {old_shapes[shaped[0]]} saved, "
                f"{new_shapes[shaped[0]]} now)" if shaped else ""]
        raise RunMismatchError(f"{where} of another model: {'; '.join(w for w in what if w)}; use another out_dir "
                               f"for this model (or the settings that made that run)")
    diffs = {}
    for k, new in record.items():
        if k in BOOKKEEPING or k in ("param_shapes", "changes") or k not in saved:
            continue
        if k == "run":
            for rk in sorted(set(new) | set(saved[k] or {})):
                a, b = (saved[k] or {}).get(rk), new.get(rk)
                if _jsonish(a) != _jsonish(b):
                    diffs[rk] = [a, b]
        elif _jsonish(saved[k]) != _jsonish(new):
            diffs[k] = [saved[k], new]
    if diffs and not allow_change:
        listed = ", ".join(f"{k} {_short(a)} -> {_short(b)}" for k, (a, b) in diffs.items())
        raise RunMismatchError(f"{where} made with other settings ({listed}); resume it with the saved settings, "
                               f"use another out_dir, or allow the change explicitly (allow_config_change=True; "
                               f"`workbench train --allow-config-change`)")
    changes = list(saved.get("changes") or [])
    if diffs:
        changes.append({"step": start, "fields": _jsonish(diffs)})
    return changes


def _write_json_atomic(path: str, obj: dict) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, default=str)
    os.replace(tmp, path)


def _diverged(mgr: ckpt.ocp.CheckpointManager | None, out_dir: str, ckpt_dir: str, what: str, first_bad: dict | None,
              lead: bool) -> str:
    """Keep the checkpoints made before the first unhealthy update, move later ones aside; the error message."""
    bad_step = None if first_bad is None else first_bad["step"]
    if mgr is None:
        return f"{what} (a run without checkpoints: change its settings and run it again)"
    steps = sorted(mgr.all_steps())
    good = [s for s in steps if bad_step is None or s <= bad_step]  # checkpoint s holds updates 0 .. s-1
    moved = [s for s in steps if s not in good]
    aside = os.path.join(out_dir, DIVERGED_DIR)
    if moved and lead:
        os.makedirs(aside, exist_ok=True)
        for s in moved:
            dest = os.path.join(aside, str(s))
            shutil.rmtree(dest, ignore_errors=True)
            os.replace(os.path.join(ckpt_dir, str(s)), dest)
    msg = f"{what}; last good checkpoint: " + (f"step {good[-1]} in {ckpt_dir}" if good else "none")
    if moved:
        msg += (f" (checkpoints {', '.join(map(str, moved))} came after the first unhealthy update, step {bad_step}: "
                f"loss {first_bad['loss']}, grad norm {first_bad['grad_norm']}; moved to {aside})")
    msg += (". The run is deterministic, so running it again with the same settings stops here again: "
            "change them (e.g. a lower learning rate, longer warm-up, clip_norm) and ")
    if good:
        msg += ("resume with allow_config_change=True (`workbench train --allow-config-change`), or start over "
                "in a new out_dir")
    else:
        msg += f"start over in a new out_dir (or delete {ckpt_dir})"
    return msg


def train(loss_fn: LossFn, params: Any, get_batch: Callable[[int], dict], config: TrainConfig, *,
          out_dir: str | None = None, flops_per_token: float | None = None,
          tokens_per_batch_fn: Callable[[dict], int] | None = None, peak_flops: float | None = None,
          callbacks: Sequence[Callback] = (), progress: bool = True,
          rules: shd.Rules | None = None, run_info: dict | None = None,
          allow_config_change: bool = False, checkpoints: bool = True) -> TrainResult:
    """Train (or resume) and return the final state. See the module and `TrainConfig` docs.

    Resumes from the latest complete checkpoint under `<out_dir>/checkpoints` when the saved settings match
    (`TrainConfig` apart from bookkeeping fields, `run_info`: what else identifies the run, e.g. model and
    data; the parameter shapes): else `RunMismatchError`, unless `allow_config_change`. Raises
    `FloatingPointError` on a non-finite loss or grad norm (no checkpoint of the bad step is written; see the
    module doc). `peak_flops` is the summed peak of all devices used; MFU = flops_per_token * tokens/s /
    peak_flops. Callbacks get `(step, record, state)` after every update. `checkpoints=False`: a throwaway
    run (e.g. one finetuning of a study that keeps only its scores) writes no checkpoint and cannot resume;
    it still records its settings and metrics under `out_dir`.
    """
    cfg = config
    out_dir = out_dir or cfg.out_dir
    if out_dir is None:
        raise ValueError("train: out_dir is required (argument or TrainConfig.out_dir)")
    os.makedirs(out_dir, exist_ok=True)
    lead = jax.process_index() == 0
    ckpt_dir = os.path.join(out_dir, "checkpoints")
    if not checkpoints and cfg.keep_last_k > 1:
        raise ValueError("train: keep_last_k > 1 averages checkpoints, so it needs checkpoints=True")
    stepper = Stepper(loss_fn, cfg, params, rules)
    state = stepper.init(params)
    mgr = ckpt.manager(ckpt_dir, max_to_keep=max(cfg.max_to_keep, cfg.keep_last_k)) if checkpoints else None
    start = (mgr.latest_step() or 0) if mgr is not None else 0
    record = {**cfg.to_json(), "run": _jsonish(dict(run_info or {})), "param_shapes": _param_shapes(params)}
    cfg_path = os.path.join(out_dir, CONFIG_FILE)
    if start:
        try:
            with open(cfg_path) as f:
                saved = json.load(f)
        except (OSError, ValueError):
            saved = {}  # a run from before settings were recorded (or a torn file): nothing to compare
        try:
            record["changes"] = _resume_check(saved if isinstance(saved, dict) else {}, record, start, out_dir,
                                              allow_config_change)
        except RunMismatchError:
            mgr.close()
            raise
        try:
            state = ckpt.restore(mgr, start, state)
        except Exception as e:  # noqa: BLE001 - orbax reports a tree mismatch as a page-long diff
            mgr.close()
            first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
            raise RunMismatchError(f"{out_dir}: cannot restore checkpoint step {start} into this model "
                                   f"({type(e).__name__}: {first[:200]}); it was made by another model or "
                                   f"settings: use another out_dir") from e
    writer = MetricsWriter(out_dir, start) if lead else None
    if lead:
        _write_json_atomic(cfg_path, record)
    first_bad = None  # the first unhealthy update (see `_healthy`), from the metrics of earlier runs and this one
    for r in writer.history if writer is not None else []:
        if "grad_norm" in r and not _healthy(r.get("loss"), r.get("grad_norm")):
            first_bad = {k: r.get(k) for k in ("step", "loss", "grad_norm")}
            break

    bar = tqdm(total=cfg.steps, initial=start, disable=not progress, desc="train", dynamic_ncols=True)
    try:
        for i in range(start, cfg.steps):
            t0 = time.perf_counter()
            raw = get_batch(i)
            ntok = (tokens_per_batch_fn or _default_tokens)(raw)
            state, mets = stepper(state, stepper.batch(raw))
            mets = {k: float(v) for k, v in jax.device_get(mets).items()}
            dt = time.perf_counter() - t0
            if first_bad is None and not _healthy(mets["loss"], mets["grad_norm"]):
                first_bad = {"step": i, "loss": mets["loss"], "grad_norm": mets["grad_norm"]}
                if lead and math.isfinite(mets["loss"]) and math.isfinite(mets["grad_norm"]):
                    tqdm.write(f"[train] warning: update {i} has grad norm {mets['grad_norm']} at loss "
                               f"{mets['loss']:.4g}: the model may have diverged")
            for name in ("loss", "grad_norm"):
                if not math.isfinite(mets[name]):
                    raise FloatingPointError(_diverged(mgr, out_dir, ckpt_dir, f"non-finite {name} ({mets[name]}) "
                                                       f"at step {i}", first_bad, lead))
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
            if mgr is not None and (done % cfg.checkpoint_every == 0 or done == cfg.steps):
                if not _all_finite(state["params"]):
                    bad = first_bad or {"step": i, "loss": rec["loss"], "grad_norm": rec["grad_norm"]}
                    raise FloatingPointError(_diverged(mgr, out_dir, ckpt_dir, f"non-finite params after step {i} "
                                                       f"(not saved)", bad, lead))
                ckpt.save(mgr, done, state)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
        if mgr is not None:
            mgr.close()

    averaged = ckpt.average_checkpoints(ckpt_dir, cfg.keep_last_k) if cfg.keep_last_k > 1 else None
    history = writer.history if writer is not None else []
    return TrainResult(params=state["params"], ema_params=state.get("ema"), averaged_params=averaged,
                       history=history, step=int(jax.device_get(state["step"])), checkpoint_dir=ckpt_dir,
                       start_step=int(start))
