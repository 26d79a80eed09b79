"""Vocabulary pruning: kept logits equal the full model's, restricted greedy generation matches, ids round-trip."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from workbench import config as C
from workbench import decoder, encdec, encoder
from workbench.data.tokenizer import Tokenizer, load_tokenizer, train_tokenizer
from workbench.generate import generate
from workbench.prune import PrunedTokenizer, VocabMap, _prune_stack, prune_tokenizer, prune_vocab, used_token_ids
from workbench.tree import count_params

V = 512  # vocabulary of the tiny presets
PROMPT = np.array([[5, 9, 17, 33, 40, 61, 70, 88], [100, 7, 130, 5, 211, 9, 300, 401]])
TOL = 1e-5

DECODERS = {"tiny": C.decoder_preset("tiny"), "tiny3": C.decoder_preset("tiny3")}
ENCDECS = {"tiny-tiny": C.encdec_preset("tiny-tiny"),
           "tiny-tiny-tied": C.encdec_preset("tiny-tiny").replace(tie_embeddings=True)}
ENCODER_ONLY = C.EncoderOnlyConfig(encoder=C.decoder_preset("tiny"), pooling="attention", num_labels=3)
INIT = {C.GemmaConfig: decoder.init, C.EncDecConfig: encdec.init, C.EncoderOnlyConfig: encoder.init}
# T5Gemma 2 (tied, merged attention) with an eoi token inside the tiny vocabulary.
T5GEMMA2 = C.encdec_config(*[C.decoder_preset("tiny3", eoi_token_id=40)] * 2)
ALL = {**DECODERS, **ENCDECS, "tiny3-tiny3": T5GEMMA2, "encoder-only": ENCODER_ONLY}


def _keep(drop=(), n=200, seed=0) -> np.ndarray:
    """Specials 0..3 and the prompt tokens, plus `n` random ids, minus `drop`."""
    rng = np.random.default_rng(seed)
    ids = set(range(4)) | set(PROMPT.ravel().tolist()) | set(rng.choice(np.arange(4, V), n, replace=False).tolist())
    return np.array(sorted(ids - set(drop)))


def _spread(params):
    """Scale layer kernels (not embeddings) so random models do not just repeat the last token."""
    def f(path, x):
        return x if "embedder" in jax.tree_util.keystr(path) or x.ndim != 2 else 3 * x
    return jax.tree_util.tree_map_with_path(f, params)


def _init(cfg, seed=0):
    def eoi_random(path, x):  # eoi embeddings start at zero: make them distinguishable from a table row
        return jax.random.normal(jax.random.key(seed + 2), x.shape, x.dtype) if "eoi_embedding" in str(path) else x

    params = jax.tree_util.tree_map_with_path(eoi_random, _spread(INIT[type(cfg)](cfg, jax.random.key(seed))))
    if isinstance(cfg, C.EncoderOnlyConfig):  # the head starts at zero: give it weights worth comparing
        k = params["head"]["kernel"]
        params["head"]["kernel"] = jax.random.normal(jax.random.key(seed + 1), k.shape, k.dtype)
    return params


def _outputs(cfg, params, tokens_BxL) -> dict[str, jnp.ndarray]:
    """Every vocabulary-facing output of a model on `tokens_BxL` (encoder input = decoder input = tokens)."""
    tokens_BxL = jnp.asarray(tokens_BxL)
    if isinstance(cfg, C.GemmaConfig):
        return {"logits": decoder.forward(params, cfg, tokens_BxL)}
    if isinstance(cfg, C.EncDecConfig):
        return {"logits": encdec.forward(params, cfg, tokens_BxL, tokens_BxL[:, ::-1]),
                "encoded": encdec.encode(params, cfg, tokens_BxL)}
    return {"scores": encoder.forward(params, cfg, tokens_BxL), "pooled": encoder.embed(params, cfg, tokens_BxL)}


@pytest.mark.parametrize("name", list(ALL))
def test_kept_logits_equal_full_model(name):
    cfg = ALL[name]
    params = _init(cfg)
    keep = _keep()
    new_cfg, new_params = prune_vocab(cfg, params, keep)
    vmap = VocabMap.from_keep_ids(keep, V)
    full, pruned = _outputs(cfg, params, PROMPT), _outputs(new_cfg, new_params, vmap.to_new(PROMPT))
    for key in full:
        want = full[key][..., keep] if key == "logits" else full[key]
        assert pruned[key].shape == want.shape
        assert float(jnp.max(jnp.abs(pruned[key] - want))) <= TOL, key
    stacks = [new_cfg] if isinstance(new_cfg, C.GemmaConfig) else [getattr(new_cfg, n) for n in ("encoder", "decoder")
                                                                    if hasattr(new_cfg, n)]
    assert {s.vocab_size for s in stacks} == {len(keep)}
    assert count_params(params) - count_params(new_params) == (V - len(keep)) * 64 * (
        2 if isinstance(cfg, C.EncDecConfig) and not cfg.tie_embeddings else 1)


def _restricted_greedy(logits_fn, prefix_BxP, n, keep=None):
    """Greedy over the kept columns only (all with keep=None), by jitted full forward passes over a
    fixed-size right-padded buffer [B, P + n] (one compilation per `logits_fn`)."""
    banned_V = jnp.zeros(V, bool) if keep is None else jnp.ones(V, bool).at[keep].set(False)
    prefix_BxP = jnp.asarray(prefix_BxP)
    buf_BxT = jnp.concatenate([prefix_BxP, jnp.zeros((prefix_BxP.shape[0], n), prefix_BxP.dtype)], axis=1)
    for i in range(n):
        last = prefix_BxP.shape[1] + i - 1
        logits_BxV = logits_fn(buf_BxT, jnp.arange(buf_BxT.shape[1])[None] <= last)[:, last]
        buf_BxT = buf_BxT.at[:, last + 1].set(jnp.argmax(jnp.where(banned_V, -jnp.inf, logits_BxV), axis=-1))
    return np.asarray(buf_BxT[:, prefix_BxP.shape[1]:])


@pytest.mark.parametrize("name", [*DECODERS, *ENCDECS])
def test_pruned_greedy_generation_maps_back_to_restricted_greedy(name):
    cfg, n = ALL[name], 8
    params = _init(cfg)
    if isinstance(cfg, C.GemmaConfig):
        prefix = PROMPT
        fn = jax.jit(lambda t, m: decoder.forward(params, cfg, t, jnp.broadcast_to(m, t.shape)))
    else:
        prefix = np.full((PROMPT.shape[0], 1), 2)  # BOS
        fn = jax.jit(lambda t, m: encdec.forward(params, cfg, jnp.asarray(PROMPT), t,
                                                 dec_mask=jnp.broadcast_to(m, t.shape)))
    free = _restricted_greedy(fn, prefix, n)
    keep = _keep(drop=set(free.ravel().tolist()) - set(range(4)) - set(PROMPT.ravel().tolist()))
    assert not np.isin(free, keep).all(), "the restriction must matter"
    vmap = VocabMap.from_keep_ids(keep, V)
    new_cfg, new_params = prune_vocab(cfg, params, keep)
    out = vmap.to_old(np.asarray(generate(new_params, new_cfg, vmap.to_new(PROMPT), n, eos_id=())))
    np.testing.assert_array_equal(out, _restricted_greedy(fn, prefix, n, keep))


def test_inputs_untouched_and_containers_new():
    cfg = ENCDECS["tiny-tiny"]
    params = _init(cfg)
    before = jax.tree_util.tree_map(np.array, params)
    keep = _keep()
    keep_before = keep.copy()
    new_cfg, new_params = prune_vocab(cfg, params, keep)
    jax.tree_util.tree_map(np.testing.assert_array_equal, params, before)
    np.testing.assert_array_equal(keep, keep_before)
    assert cfg == ENCDECS["tiny-tiny"] and new_cfg != cfg
    assert params["decoder"]["embedder"]["embedding"].shape == (V, 64)
    assert new_params is not params and new_params["decoder"] is not params["decoder"]
    assert new_params["encoder"]["layer_0"] is not params["encoder"]["layer_0"]


@pytest.mark.parametrize("keep, match", [
    ([], "empty"),
    ([[0, 1], [2, 3]], "one-dimensional"),
    ([0.0, 1.0], "integers"),
    ([-1, 0, 1], r"\[0, 512\)"),
    ([0, 1, V], r"\[0, 512\)"),
    ([0, 2, 1], "sorted ascending"),
    ([0, 1, 1, 2], "without duplicates"),
])
def test_bad_keep_ids_raise(keep, match):
    cfg = DECODERS["tiny"]
    with pytest.raises(ValueError, match=match):
        prune_vocab(cfg, jax.eval_shape(lambda: decoder.init(cfg, jax.random.key(0))), keep)


def test_mismatched_params_and_unknown_config_raise():
    cfg = DECODERS["tiny"]
    other = jax.eval_shape(lambda: decoder.init(C.decoder_preset("tiny-large"), jax.random.key(0)))
    with pytest.raises(ValueError, match="params given to prune_vocab does not match"):
        prune_vocab(cfg, other, _keep())
    with pytest.raises(TypeError, match="GemmaConfig"):
        prune_vocab(object(), {}, _keep())
    unequal = C.EncDecConfig(encoder=cfg, decoder=cfg.replace(vocab_size=256))
    with pytest.raises(ValueError, match="one vocabulary"):
        prune_vocab(unequal, {}, _keep())


EOI = 40  # a prompt token, so the eoi embedding (when layers.py uses it) is exercised by the forward check


@pytest.mark.parametrize("kind", ["decoder", "encdec", "encdec-tied"])
def test_eoi_token_remapped_or_dropped(kind):
    stack = DECODERS["tiny"].replace(eoi_token_id=EOI)
    cfg = stack if kind == "decoder" else C.encdec_config(stack, stack, tie_embeddings=kind == "encdec-tied")
    params = _init(cfg)

    def stacks(c):
        return [c] if isinstance(c, C.GemmaConfig) else [c.encoder, c.decoder]

    def embedders(p):
        return [p["embedder"]] if "embedder" in p else [s["embedder"] for s in p.values() if "embedder" in s]

    keep = _keep()
    new_cfg, new_params = prune_vocab(cfg, params, keep)
    assert {s.eoi_token_id for s in stacks(new_cfg)} == {int(np.searchsorted(keep, EOI))}
    for old, new in zip(embedders(params), embedders(new_params), strict=True):
        assert ("eoi_embedding" in old) == ("eoi_embedding" in new)
        if "eoi_embedding" in old:
            np.testing.assert_array_equal(old["eoi_embedding"], new["eoi_embedding"])
    full = _outputs(cfg, params, PROMPT)
    pruned = _outputs(new_cfg, new_params, VocabMap.from_keep_ids(keep, V).to_new(PROMPT))
    assert float(jnp.max(jnp.abs(pruned["logits"] - full["logits"][..., keep]))) <= TOL

    keep = keep[keep != EOI]
    new_cfg, new_params = prune_vocab(cfg, params, keep)
    assert {s.eoi_token_id for s in stacks(new_cfg)} == {None}
    assert all("eoi_embedding" not in e for e in embedders(new_params))


def test_prune_stack_drops_eoi_embedding():
    """The params side of the eoi rule, independent of whether the layers create `eoi_embedding`."""
    stack = C.decoder_preset("tiny").replace(eoi_token_id=7)
    tree = {"embedder": {"embedding": np.arange(V * 2.0).reshape(V, 2), "eoi_embedding": np.ones(2)}}
    vmap = VocabMap.from_keep_ids([0, 1, 2, 3, 7, 9], V)
    cfg, out = _prune_stack(stack, tree, vmap)
    assert cfg.eoi_token_id == 4 and "eoi_embedding" in out["embedder"]
    np.testing.assert_array_equal(out["embedder"]["embedding"][:, 0], [0, 2, 4, 6, 14, 18])
    cfg, out = _prune_stack(stack, tree, VocabMap.from_keep_ids([0, 1, 2, 3, 9], V))
    assert cfg.eoi_token_id is None and "eoi_embedding" not in out["embedder"]
    assert "eoi_embedding" in tree["embedder"]  # input untouched


def test_vocab_map():
    vmap = VocabMap.from_keep_ids([0, 1, 2, 3, 10, 20], 32)
    assert vmap.vocab_size == 6 and vmap.old_vocab_size == 32
    labels = np.array([[10, 20, 0], [1, 2, 3]])
    np.testing.assert_array_equal(vmap.to_old(vmap.to_new(labels)), labels)
    assert vmap.to_new([10, 11, 40, -1], fill=3).tolist() == [4, 3, 3, 3]
    assert vmap.kept([10, 11, 40, -1]).tolist() == [True, False, False, False]
    assert vmap.old_to_new[11] == -1 and vmap.new_to_old.tolist() == [0, 1, 2, 3, 10, 20]
    with pytest.raises(ValueError, match="not kept"):
        vmap.to_new([11])
    with pytest.raises(ValueError, match=r"\[0, 6\)"):
        vmap.to_old([6])
    with pytest.raises(ValueError):
        vmap.old_to_new[0] = 5  # read-only


# ------------------------------------------------------------------------------------------ tokenizers
TRAIN = [f"The quick brown fox {i} jumps over the lazy dog number {i * 7}." for i in range(300)]
HELD_OUT = "Naïve café façade — déjà vu; 東京 🙂 zqxj"


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "tok.model"
    train_tokenizer(TRAIN + [HELD_OUT], path, vocab_size=450, num_sentinels=10, hard_vocab_limit=False,
                    num_threads=1)
    return Tokenizer.load(path, num_sentinels=10)


def test_used_token_ids(tok):
    ids = used_token_ids(tok, TRAIN)
    encoded = {i for t in TRAIN for i in tok.encode(t)}
    specials = {0, 1, 2, 3} | set(tok.sentinel_ids) | set(tok.mode_ids.values())
    assert ids.dtype == np.int64 and np.all(np.diff(ids) > 0)
    assert set(ids.tolist()) == encoded | specials
    assert set(used_token_ids(tok, TRAIN, specials=False).tolist()) == encoded | {0, 1, 2, 3}
    arrays = [np.array([[5, 6], [7, 0]]), [9]]
    assert set(used_token_ids(tok, arrays, specials=False).tolist()) == {0, 1, 2, 3, 5, 6, 7, 9}
    assert set(used_token_ids(tok, "fox").tolist()) == set(tok.encode("fox")) | specials
    with pytest.raises(ValueError, match=r"\[0, "):
        used_token_ids(tok, [[tok.vocab_size]])
    no_sentinels = Tokenizer.load(tok.path, num_sentinels=100)  # too few sentinel pieces: skipped
    assert set(used_token_ids(no_sentinels, TRAIN).tolist()) == encoded | {0, 1, 2, 3}


def test_pruned_tokenizer_round_trip_and_oov(tok):
    keep = used_token_ids(tok, TRAIN)
    ptok = prune_tokenizer(tok, keep)
    assert isinstance(ptok, PrunedTokenizer) and len(ptok) == ptok.vocab_size == len(keep) < tok.vocab_size
    assert (ptok.pad_id, ptok.eos_id, ptok.bos_id, ptok.unk_id) == (0, 1, 2, 3)
    for t in TRAIN[:20]:
        ids = ptok.encode(t, add_bos=True, add_eos=True)
        assert max(ids) < ptok.vocab_size and ptok.new_to_old[ids].tolist() == tok.encode(t, True, True)
        assert ptok.decode(ids) == t and ptok.decode(np.array(ids + [0, 0])) == t
    assert ptok.encode_batch(TRAIN[:5]) == [ptok.encode(t) for t in TRAIN[:5]]
    assert ptok.oov_count == 0
    assert [ptok.id_to_piece(i) for i in ptok.sentinel_ids] == [f"<extra_id_{i}>" for i in range(10)]
    assert {k: ptok.id_to_piece(v) for k, v in ptok.mode_ids.items()} == {k: k for k in tok.mode_ids}

    held = ptok.encode(HELD_OUT)
    missing = int((~np.isin(tok.encode(HELD_OUT), keep)).sum())
    assert missing > 0 and ptok.oov_count == missing and held.count(ptok.unk_id) == missing
    assert ptok.oov_count == missing  # decoding does not count

    with pytest.raises(ValueError, match="sentinel"):
        prune_tokenizer(tok, used_token_ids(tok, TRAIN, specials=False)).sentinel_ids  # noqa: B018
    with pytest.raises(ValueError, match=r"unk \(3\)"):
        prune_tokenizer(tok, keep[keep != 3])


def test_project_tokenizer_with_pruned_model():
    """End to end on the prepared tokenizer: prune a model to a task's ids, encode, forward, decode."""
    try:
        tok = load_tokenizer()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    texts = ["A word has more than one meaning.", "The river bank was flooded; the bank lent money."]
    keep = used_token_ids(tok, texts)
    ptok = PrunedTokenizer(tok, keep)
    assert ptok.vocab_size == len(keep) < 200 < tok.vocab_size
    ids = ptok.encode_batch(texts, add_bos=True)
    assert [ptok.decode(i[1:]) for i in ids] == texts and ptok.oov_count == 0
    ptok.encode("Zebras quizzically vexed 東京")
    assert ptok.oov_count > 0

    cfg = C.decoder_preset("micro", vocab_size=tok.vocab_size)
    params = decoder.init(cfg, jax.random.key(0))
    new_cfg, new_params = prune_vocab(cfg, params, keep)
    row = ids[0]
    full = decoder.forward(params, cfg, jnp.asarray([ptok.new_to_old[row]]))[..., keep]
    pruned = decoder.forward(new_params, new_cfg, jnp.asarray([row]))
    assert float(jnp.max(jnp.abs(pruned - full))) <= TOL
