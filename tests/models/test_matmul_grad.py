"""`layers.matmul`'s written-out backward equals autodiff of the plain einsum, for both weight layouts and
both branches (in <= out, in > out), with leading axes; inside a layer, `Dense` equals `nn.Dense`."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workbench import layers


@pytest.mark.parametrize("w_is_OxI", [False, True])
@pytest.mark.parametrize("I,O", [(8, 24), (24, 8), (16, 16)])
def test_matmul_grad_equals_autodiff(I: int, O: int, w_is_OxI: bool) -> None:
    kx, kw, kg = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (3, 5, I))
    w = jax.random.normal(kw, (O, I) if w_is_OxI else (I, O))
    g = jax.random.normal(kg, (3, 5, O))
    ref = lambda x, w: jnp.einsum("bli,oi->blo" if w_is_OxI else "bli,io->blo", x, w)  # noqa: E731
    np.testing.assert_allclose(layers.matmul(x, w, w_is_OxI), ref(x, w), rtol=1e-6, atol=1e-6)
    ours = jax.vjp(lambda x, w: layers.matmul(x, w, w_is_OxI), x, w)[1](g)
    theirs = jax.vjp(ref, x, w)[1](g)
    for a, b in zip(ours, theirs, strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    # a wrong transpose in one branch would swap axes: the gradient is not symmetric in these shapes
    assert not np.allclose(ours[1], 0)


@pytest.mark.parametrize("w_is_OxI", [False, True])
def test_matmul_bf16_accumulates_as_the_einsum(w_is_OxI: bool) -> None:
    """bf16 inputs with fp32 output (the tied head in bf16): the same values and dtypes as autodiff of the einsum
    with preferred_element_type=float32."""
    kx, kw, kg = jax.random.split(jax.random.key(3), 3)
    x = jax.random.normal(kx, (2, 6, 16), jnp.bfloat16)
    w = jax.random.normal(kw, (40, 16) if w_is_OxI else (16, 40), jnp.bfloat16)
    g = jax.random.normal(kg, (2, 6, 40), jnp.float32)
    spec = "bli,oi->blo" if w_is_OxI else "bli,io->blo"
    ref = lambda x, w: jnp.einsum(spec, x, w, preferred_element_type=jnp.float32)  # noqa: E731
    out = layers.matmul(x, w, w_is_OxI, jnp.float32)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, ref(x, w), rtol=1e-6, atol=1e-6)
    ours = jax.vjp(lambda x, w: layers.matmul(x, w, w_is_OxI, jnp.float32), x, w)[1](g)
    theirs = jax.vjp(ref, x, w)[1](g)
    for a, b in zip(ours, theirs, strict=True):
        assert a.dtype == b.dtype == jnp.bfloat16
        np.testing.assert_allclose(a.astype(jnp.float32), b.astype(jnp.float32), rtol=1e-2, atol=1e-2)


def test_dense_matches_flax_dense() -> None:
    x = jax.random.normal(jax.random.key(1), (2, 7, 12))
    init = nn.initializers.variance_scaling(1.0, "fan_in", "normal")
    ours, theirs = layers.Dense(20, kernel_init=init), nn.Dense(20, use_bias=False, kernel_init=init)
    p = ours.init(jax.random.key(2), x)
    q = theirs.init(jax.random.key(2), x)
    np.testing.assert_array_equal(p["params"]["kernel"], q["params"]["kernel"])  # same init, same names
    f = lambda m, p: jnp.sum(jnp.sin(m.apply(p, x)))  # noqa: E731
    np.testing.assert_allclose(f(ours, p), f(theirs, q), rtol=1e-6)
    np.testing.assert_allclose(jax.grad(lambda p: f(ours, p))(p)["params"]["kernel"],
                               jax.grad(lambda q: f(theirs, q))(q)["params"]["kernel"], rtol=1e-5, atol=1e-6)
