"""workbench.encoder_sources: the stand-in encoder study's sources, variants and claim arithmetic."""

import jax
import pandas as pd
import pytest

from workbench import adapt, zoo
from workbench import config as C
from workbench import encoder_sources as sources
from workbench import encoder_study as es


def test_variant_claims_are_paired_differences_with_the_registry_names():
    per_seed = {"default": [0.6, 0.7], "causal": [0.5, 0.72], "attention_pool": [0.6, 0.6],
                "no_dropout": [0.61, 0.69], "high_dropout": [0.58, 0.7], "scratch": [0.5, 0.5],
                "ul2": [0.64, 0.74], "prefixlm": [0.62, 0.7]}
    claims = sources.variant_claims(per_seed)
    assert set(claims) == set(sources.PAIRS) | {"encdec_encoder_gt_decoder_encoder"}
    assert claims["bidirectional_gt_causal"]["values"] == pytest.approx([0.1, -0.02])
    assert claims["high_dropout_effect"]["values"] == pytest.approx([-0.03, 0.01])
    assert claims["encdec_encoder_gt_decoder_encoder"]["a"] == pytest.approx([0.63, 0.72])
    assert claims["encdec_encoder_gt_decoder_encoder"]["values"] == pytest.approx([0.03, 0.02])
    table = sources.claims_frame(claims).set_index("claim")
    assert table.loc["adapted_gt_scratch", "n"] == 2 and table.loc["adapted_gt_scratch", "mean"] == pytest.approx(0.15)
    assert set(sources.variants(0.0, 0.3)) == set(per_seed)


def test_missing_source_names_the_notebook_that_writes_it(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "models_dir", lambda: tmp_path)
    with pytest.raises(FileNotFoundError, match="02_objectives.ipynb"):
        sources.load_sources({"ul2": "encdec-ul2-small-s0"}, "cpu", ["ul2"])


def test_sources_run_one_knob_variants_of_the_default():
    dec = C.decoder_preset("tiny", num_layers=1, vocab_size=64)
    ed = C.EncDecConfig(dec, dec)
    up = {"small": (dec, adapt.from_scratch(dec, jax.random.key(0))),
          "ul2": (ed, adapt.decoder_to_encdec(adapt.from_scratch(dec, jax.random.key(1)), ed))}
    assert sources.stacks(up) == {"small": dec, "ul2": dec, "scratch": dec}
    P = {"ranking": {"batch_size": 2}, "batch_size": 4, "steps": 2, "learning_rate": 1e-3, "warmup_steps": 1,
         "weight_decay": 0.0, "eval_batch_size": 8, "pooling_heads": 2, "stack_dropout": 0.0,
         "default": {"attention": "bidirectional", "pooling": "mean", "dropout": 0.1}}
    rng = jax.random.split(jax.random.key(2), 2)
    toks = [jax.random.randint(k, (8, 6), 3, 64) for k in rng]
    data = {"t": {"task": "t", "kind": "classification", "num_labels": 2,
                  "train": {"tokens": toks[0], "labels": (toks[0][:, 0] % 2)},
                  "test": {"tokens": toks[1], "labels": (toks[1][:, 0] % 2)}}}
    src = sources.Sources.from_preset(P, up, data)
    assert set(src.studies) == {"small", "ul2", "scratch"}
    assert src.variant(pooling="attention") == es.Variant("bidirectional", "attention", 0.1)
    assert src.variant(dropout=0.0).dropout == 0.0
    m = src.finetune("t", "ul2", attention="causal", seed=1)
    assert m["steps"] == 2 and 0.0 <= m["score"] <= 1.0
    src.finetune("t", "scratch")
    frame = src.frame()
    assert sorted(frame["source"]) == ["scratch", "ul2"] and src.runs() == 2
    tree = sources.score_tree(frame)
    assert set(tree["t"]) == {"bidirectional", "causal"}
    main = frame.assign(model=frame["source"])
    assert set(sources.task_metrics(main, ["accuracy"])["t"]) == {"scratch", "ul2"}
    assert sources.task_sizes({"ranking": {"n_train": 3, "n_test": 4}, "n_train": 9, "n_test": None,
                               "max_len": {"retrieval": 32, "wic": 48}}, "retrieval") == {
        "n_train": 3, "n_test": 4, "max_len": 32}
    assert isinstance(frame, pd.DataFrame)
