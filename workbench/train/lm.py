"""Minimal causal-LM pieces for the CLI and tests: next-token CE loss and a deterministic batch function.
(The full objective suite lives in `workbench.objectives`.)"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from workbench import decoder
from workbench.config import GemmaConfig


def causal_lm_loss(model_cfg: GemmaConfig, pad_id: int = 0) -> Callable:
    """loss_fn(params, {'tokens' [B, L] (, 'mask')}, rng): mean next-token CE over real target tokens."""
    def loss_fn(params, batch, rng):
        tokens_BxL = batch["tokens"]
        mask_BxL = batch.get("mask", tokens_BxL != pad_id)
        deterministic = model_cfg.dropout_rate == 0.0
        logits_BxLxV = decoder.forward(params, model_cfg, tokens_BxL[:, :-1], mask_BxL[:, :-1],
                                       deterministic=deterministic, rng=None if deterministic else rng)
        logp = jax.nn.log_softmax(logits_BxLxV.astype(jnp.float32), axis=-1)
        nll_BxL = -jnp.take_along_axis(logp, tokens_BxL[:, 1:, None], axis=-1)[..., 0]
        w_BxL = mask_BxL[:, 1:].astype(jnp.float32)
        loss = jnp.sum(nll_BxL * w_BxL) / jnp.maximum(jnp.sum(w_BxL), 1.0)
        return loss, {"ppl": jnp.exp(loss), "target_tokens": jnp.sum(w_BxL)}
    return loss_fn


def array_batches(tokens_NxL: np.ndarray, batch_size: int, seed: int = 0) -> Callable[[int], dict]:
    """get_batch(step) over rows of `tokens_NxL`: a fresh permutation per epoch, fixed by (seed, epoch)."""
    n = len(tokens_NxL)
    if n < batch_size:
        raise ValueError(f"{n} rows < batch size {batch_size}")
    perms: dict[int, np.ndarray] = {}

    def perm(epoch: int) -> np.ndarray:
        if epoch not in perms:
            perms[epoch] = np.random.default_rng([seed, epoch]).permutation(n)
        return perms[epoch]

    def get_batch(step: int) -> dict:
        idx = np.arange(step * batch_size, (step + 1) * batch_size)
        rows = np.array([perm(int(e))[r] for e, r in zip(idx // n, idx % n, strict=True)])
        return {"tokens": np.asarray(tokens_NxL[rows], np.int32)}

    return get_batch
