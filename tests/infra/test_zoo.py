"""The model store: one atomic write, config checked against the weights on load, names kept inside the store."""

import json
import os
import stat
from pathlib import Path

import jax
import numpy as np
import pytest

from workbench import config, decoder, zoo
from workbench.interop.errors import CheckpointError

TINY = config.decoder_preset("tiny", vocab_size=64)


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_MODELS", str(tmp_path / "models"))
    return tmp_path / "models"


@pytest.fixture(scope="module")
def params4():
    return jax.device_get(decoder.init(TINY, jax.random.key(0)))


def test_round_trip_and_resave(store, params4):
    d = zoo.save("smoke/dec", TINY, params4)
    assert d == store / "smoke" / "dec" and zoo.exists("smoke/dec")
    cfg, params = zoo.load("smoke/dec")
    assert cfg == TINY and np.array_equal(params["layer_3"]["mlp"]["up_proj"]["kernel"],
                                          params4["layer_3"]["mlp"]["up_proj"]["kernel"])
    small = TINY.replace(num_layers=2)
    zoo.save("smoke/dec", small, jax.device_get(decoder.init(small, jax.random.key(1))))
    cfg, params = zoo.load("smoke/dec")
    assert cfg.num_layers == 2 and "layer_2" not in params
    assert [p.name for p in (store / "smoke").iterdir()] == ["dec"]  # no staging dirs left


def test_stale_workbench_config_is_refused(store, params4):
    d = zoo.save("dec", TINY, params4)
    (d / zoo.CONFIG_FILE).write_text(json.dumps(config.config_to_dict(TINY.replace(num_layers=2))))
    with pytest.raises(CheckpointError, match=r"workbench_config.json does not match.*num_layers: 2 vs 4"):
        zoo.load("dec")
    (d / zoo.CONFIG_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match=r"workbench_config.json: invalid JSON"):
        zoo.load("dec")
    (d / zoo.CONFIG_FILE).unlink()  # without our file the checkpoint's own config is used
    assert zoo.load("dec")[0].num_layers == 4


@pytest.mark.parametrize("where", ["hf_write", "final_rename"])
def test_an_interrupted_save_keeps_the_previous_model_whole(store, params4, monkeypatch, where):
    """Weights and workbench_config.json are renamed into place together; an interruption changes nothing."""
    zoo.save("dec", TINY, params4)
    small = TINY.replace(num_layers=2)
    small_params = jax.device_get(decoder.init(small, jax.random.key(1)))
    real_replace, died = os.replace, []

    def dying_replace(src, dst):
        final = Path(dst) == store / "dec"
        hit = (where == "final_rename" and final) or (where == "hf_write" and not final and Path(dst).name == "dec")
        if hit and not died:
            died.append(dst)
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", dying_replace)
    with pytest.raises(KeyboardInterrupt):
        zoo.save("dec", small, small_params)
    monkeypatch.setattr(os, "replace", real_replace)
    assert died
    cfg, params = zoo.load("dec")
    assert cfg.num_layers == 4 and "layer_3" in params
    assert [p.name for p in store.iterdir()] == ["dec"]  # no staging dirs left


@pytest.mark.parametrize("name", ["../x", "ABS", "a/../../x", "", "a//b", "./x"])
def test_names_outside_the_store_are_refused(store, params4, tmp_path, name):
    name = str(tmp_path / "x") if name == "ABS" else name  # an absolute name
    with pytest.raises(ValueError, match="invalid model name"):
        zoo.save(name, TINY, params4)
    with pytest.raises(ValueError, match="invalid model name"):
        zoo.load(name)  # (an existing checkpoint directory is loaded, but none exists there)
    assert not (tmp_path / "x").exists()


def test_files_follow_the_umask(store, params4):
    old = os.umask(0o022)
    try:
        d = zoo.save("dec", TINY, params4)
    finally:
        os.umask(old)
    assert stat.S_IMODE(d.stat().st_mode) == 0o755
    assert {stat.S_IMODE(f.stat().st_mode) for f in d.iterdir()} == {0o644}


def test_save_under_another_root_with_a_provenance_file(store, params4, tmp_path):
    d = zoo.save("small", TINY, params4, root=tmp_path / "standins", files={"provenance.json": {"steps": 3}})
    assert d == tmp_path / "standins" / "small" and not store.exists()
    assert json.loads((d / "provenance.json").read_text()) == {"steps": 3}
    cfg, _ = zoo.load(d)
    assert cfg == TINY
    with pytest.raises(ValueError, match="invalid extra file name 'config.json'"):
        zoo.save("small", TINY, params4, root=tmp_path / "standins", files={"config.json": {}})
    assert zoo.load(d)[0] == TINY  # the failed save left the previous model whole
