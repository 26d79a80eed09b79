"""workbench.real_t5gemma: the headline study's upstream (pruned to the study's texts, fingerprinted), the
encoder-decoder in its family's T5Gemma style, and why a preset does not run it (claims R1, R2)."""

import copy

import pytest

from workbench import claims, report
from workbench import notebook as nb
from workbench import real_t5gemma as rt
from workbench import sizes_study as ss
from workbench.data import load_corpus


@pytest.fixture(scope="module")
def smoke():
    return nb.load_params("real_t5gemma", "smoke", seed=[0])


def test_upstream_is_pruned_to_the_study_texts_and_fingerprinted(smoke):
    corpus = load_corpus()
    up, tok = rt.load_upstream(smoke, corpus)
    assert up["small"] is up["large"]
    cfg, params, fp = up["small"]
    assert cfg.vocab_size == tok.vocab_size and params["embedder"]["embedding"].shape[0] == cfg.vocab_size
    # every token of the texts the study tokenizes is kept: no unknown ids in its rows
    study = ss.SizesStudy(smoke, [0], tok, up)
    study.load_data(corpus)
    assert not (study.pt_train == tok.unk_id).any()
    assert study.model_config("S-S").merged_attention and study.model_config("S-S").tie_embeddings  # T5Gemma 2
    # a different kept set (e.g. without the mixture) gives another fingerprint
    other, _ = rt.load_upstream({**smoke, "it": None}, corpus)
    assert other["small"][2] != fp and len(fp) == 16
    assert other["small"][0].vocab_size < cfg.vocab_size


def test_not_run_reason_and_the_r_claims(smoke):
    cpu = nb.load_params("real_t5gemma", "cpu", seed=[0, 1, 2])
    assert rt.not_run_reason(smoke) is None and not cpu["run"]
    assert "`run: false`" in rt.not_run_reason(cpu) and "hours" in rt.not_run_reason(cpu)
    no_data = {}
    for cid in ("R1", "R2"):
        row = report.evaluate(claims.BY_ID[cid], no_data, params={"real_t5gemma": cpu})
        assert row["verdict"] == report.NOT_MEASURED and "not run at this scale" in row["reason"], row
        assert not row["reason"].startswith(report.NO_DATA)
        row = report.evaluate(claims.BY_ID[cid], no_data, params={"real_t5gemma": smoke})
        assert "random stand-in" in row["reason"], row
    gains = {"real_t5gemma": {"claims": {"S-S beats dec-S": {"pt_loss_gain": [0.05, 0.06, 0.04]}}}}
    real = copy.deepcopy(cpu) | {"run": True}
    row = report.evaluate(claims.BY_ID["R1"], gains, params={"real_t5gemma": real})
    assert row["verdict"] == report.HOLDS and row["n"] == 3
