"""KV-cached generation equals step-by-step full forward passes; pooling is padding-safe."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workbench import config as C
from workbench import decoder, encdec, encoder, pooling
from workbench.generate import generate, sample_logits


def _spread(params):
    """Scale layer kernels (not embeddings) so random models do not just repeat the last token."""
    def f(path, x):
        return x if "embedder" in jax.tree_util.keystr(path) or x.ndim != 2 else 3 * x
    return jax.tree_util.tree_map_with_path(f, params)


PROMPT = jnp.array([[0, 0, 5, 6, 7, 8, 9, 10, 11, 12], [3, 4, 5, 6, 7, 8, 9, 10, 11, 12]])


def _greedy_reference(logits_fn, prefix, n):
    """Greedy decoding by full forward passes over a fixed-size, right-padded buffer (one compilation)."""
    buf = jnp.concatenate([jnp.asarray(prefix), jnp.zeros((n,), int)])[None]
    fn = jax.jit(logits_fn)
    out = []
    for i in range(n):
        last = len(prefix) + i - 1
        t = int(jnp.argmax(fn(buf, jnp.arange(buf.shape[1])[None] <= last)[0, last]))
        buf = buf.at[0, last + 1].set(t)
        out.append(t)
    return out


def test_decoder_generation_matches_full_forward_past_window():
    cfg = C.decoder_preset("tiny")  # window 8; prompt + new tokens = 22 > window
    params = _spread(decoder.init(cfg, jax.random.key(0)))
    mask = PROMPT != 0
    out = generate(params, cfg, PROMPT, 12, mask, eos_id=())
    for b in range(2):
        ref = _greedy_reference(lambda t, m: decoder.forward(params, cfg, t, m), PROMPT[b][mask[b]], 12)
        assert out[b].tolist() == ref


def test_right_padded_prompt_equals_left_padded():
    cfg = C.decoder_preset("tiny")
    params = _spread(decoder.init(cfg, jax.random.key(0)))
    left = jnp.array([[0, 0, 5, 6, 7, 8]])
    right = jnp.array([[5, 6, 7, 8, 0, 0]])
    a = generate(params, cfg, left, 6, left != 0, eos_id=())
    b = generate(params, cfg, right, 6, right != 0, eos_id=())
    np.testing.assert_array_equal(a, b)


def test_encdec_generation_matches_full_forward():
    cfg = C.encdec_preset("tiny-large-tiny")
    params = _spread(encdec.init(cfg, jax.random.key(1)))
    mask = PROMPT != 0
    out = generate(params, cfg, PROMPT, 10, mask, eos_id=())
    for b in range(2):
        enc = PROMPT[b][mask[b]][None]
        ref = _greedy_reference(lambda t, m, e=enc: encdec.forward(params, cfg, e, t, dec_mask=m), [2], 10)
        assert out[b].tolist() == ref


def test_eos_stops_and_pads():
    cfg = C.decoder_preset("tiny")
    params = _spread(decoder.init(cfg, jax.random.key(0)))
    free = generate(params, cfg, PROMPT, 8, PROMPT != 0, eos_id=())
    row0 = free[0].tolist()
    first = next(i for i, t in enumerate(row0) if i > 0 and t not in row0[:i])  # a token new at position i
    out = generate(params, cfg, PROMPT, 8, PROMPT != 0, eos_id=row0[first])  # pretend it is EOS
    assert out[0].tolist() == row0[: first + 1] + [0] * (7 - first)


def test_sampling_filters():
    logits = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05]]))
    keys = jax.random.split(jax.random.key(0), 400)
    draw = lambda **kw: np.array([int(sample_logits(k, logits, **kw)[0]) for k in keys[:100]])  # noqa: E731
    assert set(draw(top_k=1)) == {0}
    assert set(draw(top_p=0.7)) <= {0, 1}
    assert set(draw(top_k=3)) <= {0, 1, 2}
    cfg = C.decoder_preset("tiny")
    params = _spread(decoder.init(cfg, jax.random.key(0)))
    greedy = generate(params, cfg, PROMPT, 5, eos_id=())
    topk1 = generate(params, cfg, PROMPT, 5, greedy=False, top_k=1, rng=jax.random.key(5), eos_id=())
    np.testing.assert_array_equal(greedy, topk1)
    with pytest.raises(ValueError, match="rng"):
        generate(params, cfg, PROMPT, 5, greedy=False)


def test_pooling_is_padding_safe():
    x = jax.random.normal(jax.random.key(0), (1, 5, 8))
    pad = jnp.zeros((1, 2, 8)) + 100.0  # garbage in padded slots
    left, right = jnp.concatenate([pad, x], 1), jnp.concatenate([x, pad], 1)
    ml = jnp.array([[0, 0, 1, 1, 1, 1, 1]], bool)
    mr = ml[:, ::-1]
    np.testing.assert_allclose(pooling.first_token(left, ml), x[:, 0])
    np.testing.assert_allclose(pooling.first_token(right, mr), x[:, 0])
    np.testing.assert_allclose(pooling.last_token(left, ml), x[:, -1])
    np.testing.assert_allclose(pooling.last_token(right, mr), x[:, -1])
    np.testing.assert_allclose(pooling.mean_pool(left, ml), x.mean(1), rtol=1e-6)
    np.testing.assert_allclose(pooling.mean_pool(right, mr), x.mean(1), rtol=1e-6)


@pytest.mark.parametrize("pool", ["first", "last", "mean", "attention"])
def test_encoder_only_outputs_equal_under_left_and_right_padding(pool):
    cfg = C.EncoderOnlyConfig(C.decoder_preset("tiny"), pooling=pool, num_labels=3)
    params = encoder.init(cfg, jax.random.key(0))
    params["head"]["kernel"] = jax.random.normal(jax.random.key(1), params["head"]["kernel"].shape)
    toks = jnp.arange(3, 9)[None]
    ref = encoder.forward(params, cfg, toks)
    left = jnp.concatenate([jnp.zeros((1, 3), int), toks], 1)
    right = jnp.concatenate([toks, jnp.zeros((1, 3), int)], 1)
    np.testing.assert_allclose(encoder.forward(params, cfg, left, left != 0), ref, atol=1e-5)
    np.testing.assert_allclose(encoder.forward(params, cfg, right, right != 0), ref, atol=1e-5)
    assert ref.shape == (1, 3)
