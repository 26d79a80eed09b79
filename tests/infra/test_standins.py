"""Committed stand-ins: exported with their training parameters, refused when the preset trains them otherwise."""

import jax
import pytest

from workbench import config, decoder, standins

TINY = config.decoder_preset("tiny", vocab_size=64)
PRESET = {"small": "tiny", "max_docs": None, "seq_len": 16, "batch": 2, "scale": "smoke",
          "train": {"steps": 3, "learning_rate": 1e-3}}


def test_export_then_load_checks_the_training_parameters(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_RESULTS", str(tmp_path))
    params = jax.device_get(decoder.init(TINY, jax.random.key(0)))
    d = standins.export("small", TINY, params, PRESET, 0, {"val_loss": 4.5})
    assert d == tmp_path / "standins" / "small"
    cfg, _, record = standins.load("standins/small", PRESET, "small", 0)
    assert cfg == TINY and record["val_loss"] == 4.5 and record["training"]["train"]["steps"] == 3
    assert record["provenance"]["git_commit"]
    other = {**PRESET, "batch": 4, "train": {**PRESET["train"], "steps": 5}}
    with pytest.raises(ValueError, match=r"batch: checkpoint 2 vs preset 4; train: .*make standins"):
        standins.load("standins/small", other, "small", 0)
    with pytest.raises(ValueError, match=r"seed: checkpoint 0 vs preset 1"):
        standins.load(d, PRESET, "small", 1)  # absolute directories work too
    with pytest.raises(FileNotFoundError, match=r"no checkpoint at .*standins/large.*make standins"):
        standins.load("standins/large", PRESET, "large", 0)


def test_the_committed_cpu_stand_ins_match_the_cpu_preset():
    """`make reproduce` loads results/standins/: changing the cpu preset's data or schedule without re-running
    `make standins` would make the batch refuse them, so this fails first."""
    from workbench import notebook as nb

    P = nb.load_params("pretrain", "cpu", seed=0)
    for role in ("small", "large"):
        cfg, params, record = standins.load(P["checkpoints"][role], P, role, 0)
        assert cfg == config.decoder_preset(P[role], vocab_size=cfg.vocab_size)
        assert record["training"]["train"]["steps"] * P["batch"] * P["seq_len"] >= 3_000_000
        assert record["provenance"]["git_dirty"] is False
