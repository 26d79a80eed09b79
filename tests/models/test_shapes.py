"""Parameter counts and golden shapes for every preset, via jax.eval_shape (no memory)."""

import json
import os
import pathlib

import jax
import pytest

from workbench import config as C
from workbench import decoder, encdec, encoder

GOLDEN = pathlib.Path(__file__).parent / "golden"

# Balanced / unbalanced counts from the official Flax configs; Gemma 2 published sizes.
ENCDEC_COUNTS = {
    "S-S": 312_517_632, "B-B": 591_490_560, "L-L": 1_241_761_792, "ML-ML": 2_200_345_344,
    "XL-XL": 3_766_980_608, "2B-2B": 5_596_853_760, "9B-9B": 20_333_401_088, "9B-2B": 12_292_375_296,
}
DECODER_COUNTS = {"2B": 2_614_341_888, "9B": 9_241_705_984, "27B": 27_227_128_320}


@pytest.mark.parametrize("name", sorted(ENCDEC_COUNTS))
def test_encdec_param_counts(name):
    assert encdec.param_count(C.encdec_preset(name)) == ENCDEC_COUNTS[name]


@pytest.mark.parametrize("name", sorted(DECODER_COUNTS))
def test_decoder_param_counts(name):
    assert decoder.param_count(C.decoder_preset(name)) == DECODER_COUNTS[name]


def test_tied_embeddings_remove_one_table():
    cfg = C.encdec_preset("S-S")
    tied = cfg.replace(tie_embeddings=True)
    assert encdec.param_count(cfg) - encdec.param_count(tied) == 256_000 * 512
    with pytest.raises(ValueError, match="tie_embeddings"):
        C.encdec_preset("9B-2B").replace(tie_embeddings=True)


def _shapes(tree) -> dict:
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(k): list(v.shape) for k, v in flat}


@pytest.mark.parametrize("name", ["2B-2B", "9B-2B"])
def test_golden_encdec_shapes(name):
    """t5x-style golden file: any change to the parameter tree shows up as a diff."""
    shapes = _shapes(jax.eval_shape(lambda: encdec.init(C.encdec_preset(name), jax.random.key(0))))
    path = GOLDEN / f"encdec_{name}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(shapes, indent=1, sort_keys=True) + "\n")
    assert shapes == json.loads(path.read_text())


def test_unbalanced_cross_attention_shapes():
    cfg = C.encdec_preset("9B-2B")
    p = jax.eval_shape(lambda: encdec.init(cfg, jax.random.key(0)))
    cross = p["decoder"]["layer_0"]["cross_attn"]
    assert cross["q_proj"]["kernel"].shape == (2304, 8 * 256)
    assert cross["k_proj"]["kernel"].shape == (3584, 4 * 256)
    assert cross["v_proj"]["kernel"].shape == (3584, 4 * 256)
    assert cross["o_proj"]["kernel"].shape == (8 * 256, 2304)
    assert len([k for k in p["encoder"] if k.startswith("layer_")]) == 42
    assert len([k for k in p["decoder"] if k.startswith("layer_")]) == 26


def test_encoder_only_adds_pooler_and_head():
    cfg = C.EncoderOnlyConfig(C.decoder_preset("2B"), pooling="attention", num_labels=3, pooling_heads=8)
    p = jax.eval_shape(lambda: encoder.init(cfg, jax.random.key(0)))
    assert p["head"]["kernel"].shape == (2304, 3)
    assert p["pooler"]["query"].shape == (8, 288)
    assert decoder.param_count(cfg.encoder) == DECODER_COUNTS["2B"]


def test_config_validation():
    with pytest.raises(ValueError, match="float16"):
        C.decoder_preset("tiny", dtype="float16")
    with pytest.raises(ValueError, match="num_kv_heads"):
        C.decoder_preset("tiny", num_kv_heads=3)
    with pytest.raises(KeyError, match="unknown"):
        C.encdec_preset("S-Q")
    with pytest.raises(ValueError, match="pooling"):
        C.EncoderOnlyConfig(C.decoder_preset("tiny"), pooling="max")
