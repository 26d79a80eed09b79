"""GGUF loading: tiny files written here (gemma2 / gemma3, F32 and quantised), errors, the GGUF tokenizer, and the
real Gemma 3 270M (Q4_K_M) against transformers' own GGUF loader (weights, tokenizer, logits)."""

from __future__ import annotations

import time

import gguf
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gguf.constants import GGMLQuantizationType as Q
from gguf.quants import dequantize, quantize

from workbench import decoder, pretrained
from workbench.config import DECODER_PRESETS, GemmaConfig
from workbench.interop import CheckpointError, load_gguf, load_gguf_tokenizer
from workbench.interop.gguf import gguf_config, read_gguf
from workbench.interop.params_map import flatten

# ------------------------------------------------------------------------------------------- tiny files
# A small SentencePiece-style vocabulary laid out like Gemma's: control, user-defined (whitespace runs stored with
# real spaces, as llama.cpp writes them), 256 byte tokens, merges best-first, single characters, unused controls.
CONTROL = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>"]
USER = ["\n", "\n\n", "  ", "   "]
MERGES = ["▁t", "he", "▁the", "in", "▁a", "er", "an", "▁c", "▁ca", "▁cat", "at", "▁s", "▁sat", "▁o", "▁on", "▁m",
          "▁ma", "▁mat", "▁d", "▁do", "▁dog", "ing", "▁in"]
CHARS = list("▁abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'")
TOKENS = (CONTROL + USER + [f"<0x{b:02X}>" for b in range(256)] + MERGES + CHARS
          + [f"<unused{i}>" for i in range(384 - 7 - 4 - 256 - len(MERGES) - len(CHARS))])
TYPES = [3] * len(CONTROL) + [4] * len(USER) + [6] * 256 + [1] * (len(MERGES) + len(CHARS)) + [3] * (
    len(TOKENS) - len(CONTROL) - len(USER) - 256 - len(MERGES) - len(CHARS))
SCORES = [-1000.0 if t in (3, 4) else 0.0 for t in TYPES]
_first = TYPES.index(1)
SCORES[_first:_first + len(MERGES) + len(CHARS)] = [-float(i) for i in range(len(MERGES) + len(CHARS))]
V = len(TOKENS)

GEMMA3 = DECODER_PRESETS["tiny3"].replace(vocab_size=V)  # 6 layers: 5 local + 1 global, QK-norm
GEMMA2 = DECODER_PRESETS["tiny"].replace(vocab_size=V)
NORMS = {"pre_attention_norm": "attn_norm", "post_attention_norm": "post_attention_norm",
         "pre_ffw_norm": "ffn_norm", "post_ffw_norm": "post_ffw_norm", "q_norm": "attn_q_norm",
         "k_norm": "attn_k_norm"}
PROJS = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
         "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}


def _random_params(config: GemmaConfig, seed: int = 0) -> dict:
    shapes = jax.eval_shape(lambda: decoder.init(config, jax.random.key(0)))
    rng = np.random.RandomState(seed)
    return jax.tree.map(lambda s: (0.3 * rng.standard_normal(s.shape)).astype(np.float32), shapes)


def _to_gguf(params: dict) -> dict[str, tuple[tuple[str, ...], np.ndarray, bool, bool]]:
    """GGUF name -> (our path, fp32 GGUF-layout array, transposed?, norm?), as llama.cpp's converter lays it out."""
    out = {}
    for path, x in flatten(params).items():
        x = np.asarray(x, np.float32)
        if path == ("embedder", "embedding"):
            out["token_embd.weight"] = (path, x, False, False)
        elif path == ("final_norm", "scale"):
            out["output_norm.weight"] = (path, np.float32(1) + x, False, True)
        else:
            i = path[0].removeprefix("layer_")
            if path[-1] == "scale":
                out[f"blk.{i}.{NORMS[path[-2]]}.weight"] = (path, np.float32(1) + x, False, True)
            else:
                out[f"blk.{i}.{PROJS[path[-2]]}.weight"] = (path, np.ascontiguousarray(x.T), True, False)
    return out


def _write(path, arch: str, config: GemmaConfig, tensors: dict[str, np.ndarray], qtypes: dict[str, Q] | None = None,
           meta: dict | None = None) -> None:
    w = gguf.GGUFWriter(str(path), arch)
    w.add_context_length(128)
    w.add_block_count(config.num_layers)
    w.add_embedding_length(config.embed_dim)
    w.add_feed_forward_length(config.hidden_dim)
    w.add_head_count(config.num_heads)
    w.add_head_count_kv(config.num_kv_heads)
    w.add_key_length(config.head_dim)
    w.add_value_length(config.head_dim)
    w.add_layer_norm_rms_eps(config.rms_norm_eps)
    w.add_rope_freq_base(config.rope_theta)
    w.add_sliding_window(config.sliding_window)
    if arch == "gemma2":
        w.add_attn_logit_softcapping(config.attn_logits_soft_cap)
        w.add_final_logit_softcapping(config.final_logit_soft_cap)
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(TOKENS)
    w.add_token_scores(SCORES)
    w.add_token_types(TYPES)
    w.add_bos_token_id(2)
    w.add_eos_token_id(1)
    w.add_unk_token_id(3)
    w.add_pad_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(False)
    for key, value in (meta or {}).items():
        adder = {str: w.add_string, int: w.add_uint32, float: w.add_float32, list: w.add_array}[type(value)]
        adder(key, value)
    for name, x in tensors.items():
        q = (qtypes or {}).get(name, Q.F32)
        if q == Q.F32:
            w.add_tensor(name, x)
        elif q == Q.F16:
            w.add_tensor(name, x.astype(np.float16))
        else:
            w.add_tensor(name, quantize(x, q), raw_dtype=q)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def _roundtrip(x: np.ndarray, q: Q) -> np.ndarray:
    """What a reader must get back for x stored as q."""
    if q == Q.F32:
        return x
    if q == Q.F16:
        return x.astype(np.float16).astype(np.float32)
    return dequantize(quantize(x, q), q).reshape(x.shape)


@pytest.mark.parametrize("arch", ["gemma3", "gemma2"])
def test_tiny_gguf_loads_to_the_params_it_was_written_from(tmp_path, arch):
    config = GEMMA3 if arch == "gemma3" else GEMMA2
    params = _random_params(config, seed=1)
    layout = _to_gguf(params)
    last = config.num_layers - 1
    qtypes = {"token_embd.weight": Q.F16, "blk.0.attn_q.weight": Q.Q5_0,
              **{f"blk.{i}.ffn_{p}.weight": Q.Q8_0 for i in range(config.num_layers) for p in ("gate", "up", "down")},
              f"blk.{last}.attn_v.weight": Q.Q8_0}
    path = tmp_path / f"{arch}.gguf"
    _write(path, arch, config, {n: x for n, (_, x, _, _) in layout.items()}, qtypes)

    loaded_config, loaded = load_gguf(path)
    # GGUF has no query_pre_attn_scalar: Gemma 3 takes transformers' default (256), Gemma 2 llama.cpp's head_dim.
    expected_config = config.replace(query_pre_attn_scalar=256) if arch == "gemma3" else config
    assert loaded_config.replace(rms_norm_eps=1e-6) == expected_config
    assert loaded_config.rms_norm_eps == float(np.float32(1e-6))

    flat, original = flatten(loaded), flatten(params)
    assert set(flat) == set(original)
    for name, (p, x, transposed, norm) in layout.items():
        q = qtypes.get(name, Q.F32)
        want = _roundtrip(x, q) - (np.float32(1) if norm else 0)
        want = want.T if transposed else want
        got = np.asarray(flat[p])
        assert got.dtype == np.float32 and got.shape == original[p].shape, name
        np.testing.assert_array_equal(got, want, err_msg=name)
        # ... and within the storage error of the written values: fp32 rounding of 1 + w for norms, half a
        # quantisation step (block max / 127 for Q8_0, / 15 for Q5_0) or fp16 rounding for the others.
        bound = {Q.F32: 1.2e-7 if norm else 0.0, Q.F16: 1e-3, Q.Q8_0: np.abs(x).max() / 127,
                 Q.Q5_0: np.abs(x).max() / 15}[q]
        assert np.abs(got - original[p]).max() <= bound, name


def test_bfloat16_params_and_activation_dtype(tmp_path):
    params = _random_params(GEMMA3)
    layout = _to_gguf(params)
    path = tmp_path / "m.gguf"
    _write(path, "gemma3", GEMMA3, {n: x for n, (_, x, _, _) in layout.items()})
    config, loaded = load_gguf(path, param_dtype="bfloat16", dtype="bfloat16")
    assert (config.param_dtype, config.dtype) == ("bfloat16", "bfloat16")
    assert all(x.dtype == jnp.bfloat16 for x in jax.tree.leaves(loaded))


def test_header_parser_agrees_with_gguf_reader(tmp_path):
    params = _random_params(GEMMA2)
    path = tmp_path / "m.gguf"
    _write(path, "gemma2", GEMMA2, {n: x for n, (_, x, _, _) in _to_gguf(params).items()},
           {"blk.0.ffn_up.weight": Q.Q8_0})
    ours, ref = read_gguf(path), gguf.GGUFReader(path)
    assert set(ours.metadata) == {k for k in ref.fields if not k.startswith("GGUF.")}
    for key, field in ref.fields.items():
        if not key.startswith("GGUF."):
            value = ours.metadata[key]
            assert (value.tolist() if isinstance(value, np.ndarray) else value) == field.contents(), key
    assert {t.name: (tuple(int(d) for d in reversed(t.shape)), int(t.tensor_type), int(t.data_offset))
            for t in ref.tensors} == {n: (t.shape, t.qtype, t.offset) for n, t in ours.tensors.items()}


# ----------------------------------------------------------------------------------------------- errors
def test_missing_unexpected_and_wrong_shape_tensors_in_one_error(tmp_path):
    tensors = {n: x for n, (_, x, _, _) in _to_gguf(_random_params(GEMMA3)).items()}
    del tensors["blk.1.ffn_up.weight"]
    tensors["blk.0.attn_extra.weight"] = np.zeros(64, np.float32)
    tensors["blk.2.attn_q.weight"] = np.zeros((32, 64), np.float32)
    path = tmp_path / "bad.gguf"
    _write(path, "gemma3", GEMMA3, tensors)
    with pytest.raises(CheckpointError) as err:
        load_gguf(path)
    msg = str(err.value)
    assert "missing keys: blk.1.ffn_up.weight" in msg
    assert "unexpected keys: blk.0.attn_extra.weight" in msg
    assert "blk.2.attn_q.weight: expected [64, 64], found [32, 64]" in msg


def test_untied_output_weight_is_an_error_and_a_tied_copy_is_accepted(tmp_path):
    tensors = {n: x for n, (_, x, _, _) in _to_gguf(_random_params(GEMMA2)).items()}
    _write(tmp_path / "tied.gguf", "gemma2", GEMMA2, {**tensors, "output.weight": tensors["token_embd.weight"]})
    load_gguf(tmp_path / "tied.gguf")
    _write(tmp_path / "untied.gguf", "gemma2", GEMMA2, {**tensors, "output.weight": tensors["token_embd.weight"] + 1})
    with pytest.raises(CheckpointError, match="output.weight: must equal token_embd.weight"):
        load_gguf(tmp_path / "untied.gguf")


def test_unsupported_architecture_and_metadata_are_named(tmp_path):
    tensors = {n: x for n, (_, x, _, _) in _to_gguf(_random_params(GEMMA3)).items()}
    _write(tmp_path / "llama.gguf", "llama", GEMMA3, tensors)
    with pytest.raises(CheckpointError, match="general.architecture='llama'"):
        load_gguf(tmp_path / "llama.gguf")
    _write(tmp_path / "meta.gguf", "gemma3", GEMMA3, tensors,
           meta={"gemma3.rope.scaling.type": "yarn", "gemma3.expert_count": 8, "gemma3.rope.dimension_count": 8})
    with pytest.raises(CheckpointError) as err:
        load_gguf(tmp_path / "meta.gguf")
    msg = str(err.value)
    assert "gemma3.rope.scaling.type='yarn'" in msg and "gemma3.expert_count=8" in msg
    assert "gemma3.rope.dimension_count=8" in msg


def test_gguf_only_config_fields(tmp_path):
    """Linear RoPE scaling, a local RoPE base, a per-layer window pattern and an attention scale are read."""
    meta = {"gemma3.rope.scaling.type": "linear", "gemma3.rope.scaling.factor": 8.0,
            "gemma3.rope.freq_base_swa": 20_000.0, "gemma3.attention.scale": 0.25,
            "gemma3.attention.sliding_window_pattern": [True, True, False] * 2}
    tensors = {n: x for n, (_, x, _, _) in _to_gguf(_random_params(GEMMA3)).items()}
    path = tmp_path / "m.gguf"
    _write(path, "gemma3", GEMMA3, tensors, meta=meta)
    config, _ = load_gguf(path)
    assert (config.rope_scaling_factor, config.local_rope_theta, config.query_pre_attn_scalar) == (8.0, 20_000.0, 16)
    assert config.attention_pattern == ("local", "local", "global")
    metadata = read_gguf(path).metadata
    with pytest.raises(CheckpointError, match="split.count=2"):
        gguf_config({**metadata, "split.count": 2})
    with pytest.raises(CheckpointError, match="sliding_window_pattern"):
        gguf_config({**metadata, "gemma3.attention.sliding_window_pattern": np.array([True, False])})


def test_truncated_file_is_named(tmp_path):
    path = tmp_path / "m.gguf"
    _write(path, "gemma3", GEMMA3, {n: x for n, (_, x, _, _) in _to_gguf(_random_params(GEMMA3)).items()})
    last = max(read_gguf(path).tensors.values(), key=lambda t: t.offset).name
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match=f"{last}: data ends past the end of the file"):
        load_gguf(path)
    (tmp_path / "junk.gguf").write_bytes(b"GGML" + bytes(100))
    with pytest.raises(CheckpointError, match="not a readable GGUF file"):
        load_gguf(tmp_path / "junk.gguf")


# -------------------------------------------------------------------------------------------- tokenizer
TINY_TEXTS = ["the cat sat on the mat.\n\nA dog!", "the  cat   sat", "ending in\n", "Caf\u00e9 \u00fcber 42 \U0001f642",
              "<start_of_turn>the dog<end_of_turn>", "  leading and trailing  "]


@pytest.fixture(scope="module")
def tiny_tokenizer_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok") / "tok.gguf"
    _write(path, "gemma3", GEMMA3, {n: x for n, (_, x, _, _) in _to_gguf(_random_params(GEMMA3)).items()})
    return path


def test_tiny_tokenizer_round_trips(tiny_tokenizer_file):
    tok = load_gguf_tokenizer(tiny_tokenizer_file)
    assert (tok.vocab_size, tok.pad_id, tok.eos_id, tok.bos_id, tok.unk_id) == (V, 0, 1, 2, 3)
    for text in TINY_TEXTS:
        ids = tok.encode(text)
        assert tok.decode(ids) == text
        assert tok.encode(text, add_bos=True, add_eos=True) == [2, *ids, 1]
    pieces = [tok.id_to_piece(i) for i in tok.encode("the cat sat\n\n  ok")]
    assert pieces == ["t", "he", "▁cat", "▁sat", "\n\n", "▁▁", "o", "k"]  # merges best-first; whole user tokens
    assert tok.encode("<start_of_turn>") == [TOKENS.index("<start_of_turn>")]
    assert tok.encode("\u00e9") == [TOKENS.index("<0xC3>"), TOKENS.index("<0xA9>")]  # byte fallback
    assert load_gguf_tokenizer(tiny_tokenizer_file, num_sentinels=10).sentinel_ids[0] == TOKENS.index("<unused0>")


def test_tiny_tokenizer_matches_transformers(tiny_tokenizer_file):
    transformers = pytest.importorskip("transformers")
    hf = transformers.AutoTokenizer.from_pretrained(tiny_tokenizer_file.parent, gguf_file=tiny_tokenizer_file.name)
    ours = load_gguf_tokenizer(tiny_tokenizer_file)
    for text in TINY_TEXTS:
        assert ours.encode(text) == hf(text, add_special_tokens=False).input_ids, text
        assert ours.encode(text, add_bos=True) == hf(text).input_ids, text


# --------------------------------------------------------------------------- the real Gemma 3 270M (Q4_K_M)
# Jane Austen, Pride and Prejudice (1813), chapter 1 (public domain), with a few additions for the tokenizer:
# numbers, a currency sign, curly quotes, an accented word, double spaces, blank lines and a tab.
AUSTEN = """PRIDE AND PREJUDICE.  By Jane Austen (1813).  Chapter 1.

It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.

However little known the feelings or views of such a man may be on his first entering a neighbourhood, this truth \
is so well fixed in the minds of the surrounding families, that he is considered the rightful property of some one \
or other of their daughters.

\u201cMy dear Mr. Bennet,\u201d said his lady to him one day, \u201chave you heard that Netherfield Park is let at \
last?\u201d

Mr. Bennet replied that he had not.

"But it is," returned she; "for Mrs. Long has just been here, and she told me all about it."

Mr. Bennet made no answer.

"Do you not want to know who has taken it?" cried his wife impatiently.

"You want to tell me, and I have no objection to hearing it."

This was invitation enough.

"Why, my dear, you must know, Mrs. Long says that Netherfield is taken by a young man of large fortune from the \
north of England; that he came down on Monday in a chaise and four to see the place, and was so much delighted with \
it, that he agreed with Mr. Morris immediately; that he is to take possession before Michaelmas, and some of his \
servants are to be in the house by the end of next week."

"What is his name?"  "Bingley."  "Is he married or single?"

"Oh! Single, my dear, to be sure! A single man of large fortune; four or five thousand a year (\u00a34,000 or \
5,000).\tWhat a fine thing for our girls! A na\u00efve r\u00e9sum\u00e9 of 24 hours, 7 days & 365\u00bd nights."
"""
REAL = "gemma3-270m"
# max |Δlogit| vs transformers (fp32, eager attention) measured on these 399 tokens: 1.6e-4, where logits reach
# |38.8| (4e-6 relative). That is fp32 rounding through 18 layers: against an fp64 run of transformers ours is off by
# 1.3e-4 and transformers' fp32 eager path by 7e-5, and transformers' own fp32 eager and sdpa paths differ by 1.9e-4.
REAL_TOL = 3e-4


@pytest.fixture(scope="module")
def real_file():
    return pretrained.ensure(REAL)


@pytest.mark.slow
def test_real_config_matches_the_preset(real_file):
    config = gguf_config(read_gguf(real_file).metadata)
    assert config.replace(rms_norm_eps=1e-6) == DECODER_PRESETS["270M"]


@pytest.mark.slow
def test_real_tokenizer_matches_transformers(real_file):
    transformers = pytest.importorskip("transformers")
    t0 = time.time()
    # tokenizer_type names the class the file's config resolves to (GemmaTokenizer, checked against the full
    # route once: same tokenizer.json); without it transformers re-reads the header with gguf.GGUFReader (~40 s)
    # only to find that class.
    hf = transformers.AutoTokenizer.from_pretrained(real_file.parent, gguf_file=real_file.name,
                                                    tokenizer_type="gemma3_text")
    t1 = time.time()
    ours = load_gguf_tokenizer(real_file)
    print(f"TIMING transformers tokenizer {t1 - t0:.1f}s, ours {time.time() - t1:.1f}s")
    ids = ours.encode(AUSTEN)
    assert len(ids) >= 300
    assert ids == hf(AUSTEN, add_special_tokens=False).input_ids
    assert ours.encode(AUSTEN, add_bos=True) == hf(AUSTEN).input_ids  # the file's add_bos_token is true
    assert ours.decode(ids) == AUSTEN
    for text in ("\ttabs\t\tand   spaces\n\n\n", "\u6771\u4eac \U0001f642 \u00c6\u00d8\u00c5", "x" * 40,
                 "<start_of_turn>user\nhi<end_of_turn>\n", "3.14159 -42 1e10 0x1F"):
        assert ours.encode(text) == hf(text, add_special_tokens=False).input_ids, text


@pytest.mark.slow
def test_real_weights_and_logits_match_transformers(real_file):
    """Every tensor equals transformers' (transposed / norm-converted); logits agree to fp32 rounding.

    One test for both, so that transformers' model (the slow part: ~1 min to read and dequantise) loads once
    even when pytest-xdist spreads the module's tests over workers.
    """
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    t0 = time.time()
    hf = transformers.AutoModelForCausalLM.from_pretrained(real_file.parent, gguf_file=real_file.name,
                                                           attn_implementation="eager", dtype=torch.float32).eval()
    t1 = time.time()
    config, params = load_gguf(real_file)
    print(f"TIMING transformers model {t1 - t0:.1f}s, ours {time.time() - t1:.1f}s")

    c = hf.config
    assert (c.vocab_size, c.num_hidden_layers, c.hidden_size, c.intermediate_size, c.num_attention_heads,
            c.num_key_value_heads, c.head_dim, c.query_pre_attn_scalar, c.sliding_window, c.rms_norm_eps) == (
        config.vocab_size, config.num_layers, config.embed_dim, config.hidden_dim, config.num_heads,
        config.num_kv_heads, config.head_dim, config.query_pre_attn_scalar, config.sliding_window, config.rms_norm_eps)
    assert c.layer_types == [{"local": "sliding_attention", "global": "full_attention"}[t]
                             for t in config.attention_types]
    assert c.rope_parameters["full_attention"]["rope_theta"] == config.rope_theta
    assert c.rope_parameters["sliding_attention"]["rope_theta"] == config.local_rope_theta
    assert all(r["rope_type"] == "default" for r in c.rope_parameters.values()) and config.rope_scaling_factor == 1
    assert c.final_logit_softcapping is None and c.attn_logit_softcapping is None

    state = {k: v.numpy() for k, v in hf.state_dict().items()}
    hf_norms = {"pre_attention_norm": "input_layernorm", "post_attention_norm": "post_attention_layernorm",
                "pre_ffw_norm": "pre_feedforward_layernorm", "post_ffw_norm": "post_feedforward_layernorm"}
    seen, differ = set(), []
    for path, x in flatten(params).items():
        if path == ("embedder", "embedding"):
            key, tr = "model.embed_tokens.weight", False
        elif path == ("final_norm", "scale"):
            key, tr = "model.norm.weight", False
        else:
            i = path[0].removeprefix("layer_")
            if path[1] in hf_norms:
                key, tr = f"model.layers.{i}.{hf_norms[path[1]]}.weight", False
            else:
                module = {"attn": "self_attn", "mlp": "mlp"}[path[1]]
                key, tr = f"model.layers.{i}.{module}.{path[2]}.weight", path[-1] == "kernel"
        seen.add(key)
        ref = state[key].T if tr else state[key]
        if ref.shape != x.shape or not np.array_equal(np.asarray(x), ref):
            differ.append(key)
    assert not differ, f"tensors differing from transformers': {differ}"
    assert set(state) - seen == {"lm_head.weight"}
    np.testing.assert_array_equal(state["lm_head.weight"], state["model.embed_tokens.weight"])

    tokens = np.asarray([load_gguf_tokenizer(real_file).encode(AUSTEN, add_bos=True)])
    t2 = time.time()
    with torch.no_grad():
        ref = hf(torch.tensor(tokens)).logits.numpy()
    t3 = time.time()
    ours = np.asarray(decoder.forward(params, config, jnp.asarray(tokens, jnp.int32)))
    print(f"TIMING forward L={tokens.shape[1]}: transformers {t3 - t2:.1f}s, ours {time.time() - t3:.1f}s")
    assert ours.shape == ref.shape == (1, tokens.shape[1], config.vocab_size) and ours.dtype == np.float32
    d = float(np.abs(ours.astype(np.float64) - ref).max())
    print(f"PARITY gemma3-270m Q4_K_M real weights L={tokens.shape[1]}: max|dlogit| = {d:.2e} "
          f"(max |logit| {np.abs(ref).max():.1f})")
    assert d <= REAL_TOL
