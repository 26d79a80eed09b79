"""Loss factories: label shift, no target leakage, distillation, task losses."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workbench import adapt, decoder, encdec, encoder, objectives
from workbench import config as C

DEC = C.decoder_preset("tiny")
ED = C.EncDecConfig(DEC, DEC)


def _manual_ce(logits, targets):
    logp = jax.nn.log_softmax(logits, -1)
    return -float(jnp.mean(jnp.take_along_axis(logp, targets[..., None], -1)))


def test_encdec_loss_uses_shifted_targets_with_bos():
    params = encdec.init(ED, jax.random.key(0))
    inputs, targets = jnp.arange(3, 11)[None], jnp.array([[20, 21, 22, 1]])
    loss, m = objectives.encdec_seq2seq_loss(ED)(params, {"inputs": inputs, "targets": targets})
    logits = encdec.forward(params, ED, inputs, jnp.array([[2, 20, 21, 22]]))
    assert abs(float(loss) - _manual_ce(logits, targets)) < 1e-5
    assert float(m["tokens"]) == 4


def test_causal_lm_loss_predicts_next_token():
    params = decoder.init(DEC, jax.random.key(0))
    tokens = jnp.array([[5, 6, 7, 8, 0, 0]])
    loss, m = objectives.causal_lm_loss(DEC)(params, {"tokens": tokens})
    logits = decoder.forward(params, DEC, tokens[:, :4])
    assert abs(float(loss) - _manual_ce(logits[:, :3], tokens[:, 1:4])) < 1e-5
    assert float(m["tokens"]) == 3


def test_logits_window_equals_the_full_logits_sliced():
    params = decoder.init(DEC, jax.random.key(0))
    tokens = jnp.array([[0, 5, 6, 7, 8, 9, 10], [3, 4, 5, 6, 7, 8, 9]])
    full = decoder.forward(params, DEC, tokens, tokens != 0)
    part = decoder.forward(params, DEC, tokens, tokens != 0, logits_window=(2, 6))
    assert part.shape == (2, 4, DEC.vocab_size)
    np.testing.assert_allclose(part, full[:, 2:6], rtol=1e-6, atol=1e-6)
    for bad in ((-1, 3), (3, 3), (2, 8)):
        with pytest.raises(ValueError, match="logits_window"):
            decoder.forward(params, DEC, tokens, logits_window=bad)


@pytest.mark.parametrize("attention", ["prefix", "causal"])
def test_decoder_seq2seq_loss_and_grads_equal_the_sliced_full_logits(attention):
    """The head on the target positions only gives the loss and gradients of slicing the full logits."""
    params = decoder.init(DEC, jax.random.key(0))
    inputs = jnp.array([[0, 0, 5, 6, 7, 8], [3, 4, 5, 6, 7, 8]])
    targets = jnp.array([[9, 10, 11, 1], [12, 13, 1, 0]])
    batch = {"inputs": inputs, "targets": targets}

    def sliced(p):
        tokens, prefix = objectives.concat_prefix(inputs, targets)
        logits = decoder.forward(p, DEC, tokens, tokens != 0, attention=attention,
                                 prefix_BxL=prefix if attention == "prefix" else None)[:, inputs.shape[1] - 1:-1]
        return objectives.token_cross_entropy(logits, targets, targets != 0)[0]

    loss_fn = objectives.decoder_seq2seq_loss(DEC, attention=attention)
    (loss, m), g = jax.value_and_grad(loss_fn, has_aux=True)(params, batch)
    ref, g_ref = jax.value_and_grad(sliced)(params)
    assert float(m["tokens"]) == 7
    assert abs(float(loss) - float(ref)) < 1e-6
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), g, g_ref)
    assert objectives.target_window(inputs, targets) == (5, 9)


def test_no_target_token_visible_to_encoder_or_prefix():
    """Changing target j must not change any prediction of targets <= j (nor the encoder)."""
    params = decoder.init(DEC, jax.random.key(0))
    ed = adapt.decoder_to_encdec(params, ED)
    inputs = jnp.array([[0, 0, 5, 6, 7, 8]])
    t1, t2 = jnp.array([[9, 10, 11, 12]]), jnp.array([[9, 10, 40, 41]])
    for fn in (lambda t: objectives.concat_prefix(inputs, t),):
        tok1, pre1 = fn(t1)
        tok2, pre2 = fn(t2)
        np.testing.assert_array_equal(pre1, pre2)
        l1 = decoder.forward(params, DEC, tok1, tok1 != 0, attention="prefix", prefix_BxL=pre1)
        l2 = decoder.forward(params, DEC, tok2, tok2 != 0, attention="prefix", prefix_BxL=pre2)
        np.testing.assert_allclose(l1[:, 2:8], l2[:, 2:8], atol=1e-6)  # real positions predicting targets 0..2
    e1 = encdec.encode(ed, ED, inputs, inputs != 0)
    d1 = encdec.forward(ed, ED, inputs, jnp.array([[2, 9, 10, 11]]), inputs != 0)
    d2 = encdec.forward(ed, ED, inputs, jnp.array([[2, 9, 10, 40]]), inputs != 0)
    np.testing.assert_allclose(d1[:, :3], d2[:, :3], atol=1e-6)
    assert e1.shape == (1, 6, DEC.embed_dim)


def test_distillation_from_itself_is_zero():
    params = decoder.init(DEC, jax.random.key(0))
    batch = {"inputs": jnp.arange(3, 11)[None], "targets": jnp.arange(30, 36)[None]}
    batch = objectives.add_teacher_topk(batch, params, DEC, k=DEC.vocab_size)
    loss_fn = objectives.decoder_seq2seq_loss(DEC, attention="causal", kd_weight=1.0, temperature=2.0)
    loss, m = loss_fn(params, batch)
    assert abs(float(m["kd"])) < 1e-5 and abs(float(loss)) < 1e-5
    other = decoder.init(DEC, jax.random.key(1))
    loss_o, m_o = loss_fn(other, batch)
    assert float(m_o["kd"]) > 0.01
    mix = objectives.decoder_seq2seq_loss(DEC, attention="causal", kd_weight=0.25)(other, batch)[1]
    assert abs(float(mix["loss"]) - (0.75 * float(mix["ce"]) + 0.25 * float(mix["kd"]))) < 1e-5
    with pytest.raises(KeyError, match="teacher"):
        loss_fn(params, {k: batch[k] for k in ("inputs", "targets")})


def test_student_encdec_distillation_runs_with_topk():
    params = decoder.init(DEC, jax.random.key(0))
    ed = adapt.decoder_to_encdec(params, ED)
    batch = objectives.add_teacher_topk({"inputs": jnp.arange(3, 11)[None], "targets": jnp.arange(30, 36)[None]},
                                        params, DEC, k=16)
    assert batch["teacher_ids"].shape == (1, 6, 16)
    loss, m = objectives.encdec_seq2seq_loss(ED, kd_weight=0.5)(ed, batch)
    assert np.isfinite(float(loss)) and float(m["kd"]) >= 0


@pytest.mark.parametrize("task,n", [("classification", 3), ("regression", 1), ("ranking", 1)])
def test_task_losses_at_zero_head(task, n):
    cfg = C.EncoderOnlyConfig(DEC, task=task, num_labels=3 if task == "classification" else 2)
    params = encoder.init(cfg, jax.random.key(0))  # zero-initialised head: uniform predictions
    if task == "ranking":
        batch = {"tokens": jnp.arange(3, 3 + 2 * 4 * 5).reshape(2, 4, 5), "labels": jnp.array([0, 3])}
        loss, _ = objectives.ranking_loss(cfg)(params, batch)
        assert abs(float(loss) - math.log(4)) < 1e-5
        pw, _ = objectives.ranking_loss(cfg, listwise=False)(params, batch)
        assert abs(float(pw) - math.log(2)) < 1e-5
    elif task == "classification":
        batch = {"tokens": jnp.arange(3, 13).reshape(2, 5), "labels": jnp.array([0, 2])}
        loss, _ = objectives.classification_loss(cfg)(params, batch)
        assert abs(float(loss) - math.log(3)) < 1e-5
    else:
        batch = {"tokens": jnp.arange(3, 13).reshape(2, 5), "labels": jnp.array([1.0, -2.0])}
        loss, _ = objectives.regression_loss(cfg)(params, batch)
        assert abs(float(loss) - 2.5) < 1e-5



def test_equal_factory_arguments_give_the_same_loss_function():
    """The trainer and `evaluate` reuse compiled programs per function object: equal arguments, one object."""
    assert objectives.encdec_seq2seq_loss(ED, kd_weight=0.5) is objectives.encdec_seq2seq_loss(ED, kd_weight=0.5)
    assert objectives.encdec_seq2seq_loss(ED, kd_weight=0.5) is not objectives.encdec_seq2seq_loss(ED)
    assert objectives.causal_lm_loss(DEC) is objectives.causal_lm_loss(C.decoder_preset("tiny"))
    assert objectives.decoder_seq2seq_loss(DEC) is not objectives.decoder_seq2seq_loss(DEC, attention="causal")
    with pytest.raises(ValueError, match="attention must be"):
        objectives.decoder_seq2seq_loss(DEC, attention="sideways")


def test_token_accuracy_is_the_weighted_argmax_hit_rate_ties_counted_correct():
    """The token accuracy reads 'gold logit is the largest' (no argmax): on untied logits it equals the weighted
    argmax hit rate; a gold logit tied with another id's counts as correct, and zero-weight tokens never count."""
    logits = jax.random.normal(jax.random.key(4), (3, 7, 11))
    targets = jax.random.randint(jax.random.key(5), (3, 7), 0, 11)
    targets = targets.at[0, :4].set(jnp.argmax(logits[0, :4], -1))  # some hits
    weights = jnp.ones((3, 7)).at[2, 5:].set(0.0)
    _, m = objectives.token_cross_entropy(logits, targets, weights)
    hits = (jnp.argmax(logits, -1) == targets) * weights
    assert float(m["accuracy"]) == pytest.approx(float(hits.sum() / weights.sum())) and float(hits.sum()) >= 4
    tied = jnp.zeros((1, 2, 5)).at[0, 0, 3].set(1.0)  # row 0: gold 3 is the unique max; row 1: all equal
    _, m = objectives.token_cross_entropy(tied, jnp.array([[3, 4]]), jnp.ones((1, 2)))
    assert float(m["accuracy"]) == 1.0
