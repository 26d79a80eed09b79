"""`layers.attend` (head-major attention with a written-out backward) equals the einsum formulation it replaced
and autodiff of it: forward and gradients, with and without soft-cap, grouped and plain heads, cross shapes
(L != S), padded rows that see no key at all, a mask shared over the batch, and bf16 activations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workbench import layers


def reference(q, k, v, mask, cap, probs_dtype=jnp.float32):
    """The einsum attention `layers.Attention` used before `attend` (autodiff differentiates it)."""
    logits = jnp.einsum("blkgh,bskh->bkgls", q, k.astype(q.dtype), preferred_element_type=jnp.float32)
    logits = jnp.where(mask[:, None, None], layers.soft_cap(logits, cap), layers.NEG_INF)
    probs = jax.nn.softmax(logits, axis=-1).astype(probs_dtype)
    return jnp.einsum("bkgls,bskh->blkgh", probs, v.astype(probs.dtype))


def _inputs(B, L, S, K, G, h, dtype=jnp.float32, seed=0):
    kq, kk, kv, kg = jax.random.split(jax.random.key(seed), 4)
    q = (jax.random.normal(kq, (B, L, K, G, h)) * 2.0).astype(dtype)  # large scores: the soft-cap bites
    k = jax.random.normal(kk, (B, S, K, h)).astype(dtype)
    v = jax.random.normal(kv, (B, S, K, h)).astype(dtype)
    g = jax.random.normal(kg, (B, L, K, G, h)).astype(dtype)
    return q, k, v, g


def _masks(B, L, S):
    causal = jnp.tril(jnp.ones((L, S), bool), k=S - L)
    padded = jnp.broadcast_to(causal, (B, L, S)).at[0, :, S // 2:].set(False).at[1, 1].set(False)  # row 1: no key
    return {"causal+padding": padded, "shared over batch": causal[None], "full": jnp.ones((B, L, S), bool)}


@pytest.mark.parametrize("cap", [50.0, None])
@pytest.mark.parametrize("L,S,K,G", [(6, 6, 2, 2), (5, 9, 1, 3), (7, 4, 3, 1)])
def test_attend_matches_the_einsum_and_its_autodiff(L: int, S: int, K: int, G: int, cap) -> None:
    B, h = 3, 8
    q, k, v, g = _inputs(B, L, S, K, G, h)
    for name, mask in _masks(B, L, S).items():
        ours, vjp_ours = jax.vjp(lambda q, k, v, m=mask: layers.attend(q, k, v, m, cap), q, k, v)
        theirs, vjp_theirs = jax.vjp(lambda q, k, v, m=mask: reference(q, k, v, m, cap), q, k, v)
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6, err_msg=name)
        for what, a, b in zip("qkv", vjp_ours(g), vjp_theirs(g), strict=True):
            assert a.shape == b.shape and a.dtype == b.dtype, (name, what)
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=f"{name}: d{what}")


def test_attend_masked_keys_and_rows_get_no_gradient() -> None:
    """A key no query may see gets exactly zero gradient (as `where` gives autodiff), and a query row that sees
    no key at all (uniform probabilities over masked scores) passes none back to q or k. That row's output is
    the mean of v, so v's gradient reaches every key of its batch row (as autodiff's)."""
    B, L, S, K, G, h = 2, 4, 6, 1, 2, 8
    q, k, v, g = _inputs(B, L, S, K, G, h, seed=1)
    mask = jnp.ones((B, L, S), bool).at[:, :, 4:].set(False).at[1, 2].set(False)
    dq, dk, dv = jax.vjp(lambda q, k, v: layers.attend(q, k, v, mask, 50.0), q, k, v)[1](g)
    assert np.all(np.asarray(dk[:, 4:]) == 0) and np.all(np.asarray(dv[0, 4:]) == 0)
    assert np.all(np.asarray(dv[1, 4:]) != 0)
    assert np.all(np.asarray(dq[1, 2]) == 0)
    assert np.any(np.asarray(dq[0, 2]) != 0) and np.any(np.asarray(dk[:, :4]) != 0)


def test_attend_bf16_keeps_dtypes_and_values() -> None:
    """bf16 activations (fp32 scores and softmax, bf16 probabilities): same output and gradient dtypes as autodiff
    of the einsum, values within bf16 rounding."""
    B, L, S, K, G, h = 2, 8, 8, 2, 2, 16
    q, k, v, g = _inputs(B, L, S, K, G, h, jnp.bfloat16, seed=2)
    mask = jnp.tril(jnp.ones((L, S), bool))[None]
    ours, vjp_ours = jax.vjp(lambda q, k, v: layers.attend(q, k, v, mask, 50.0, jnp.bfloat16), q, k, v)
    theirs, vjp_theirs = jax.vjp(lambda q, k, v: reference(q, k, v, mask, 50.0, jnp.bfloat16), q, k, v)
    assert ours.dtype == theirs.dtype == jnp.bfloat16
    np.testing.assert_allclose(ours.astype(jnp.float32), theirs.astype(jnp.float32), rtol=2e-2, atol=2e-2)
    for a, b in zip(vjp_ours(g), vjp_theirs(g), strict=True):
        assert a.dtype == b.dtype == jnp.bfloat16
        scale = float(jnp.max(jnp.abs(b.astype(jnp.float32))))
        np.testing.assert_allclose(a.astype(jnp.float32), b.astype(jnp.float32), rtol=0, atol=2e-2 * scale)
