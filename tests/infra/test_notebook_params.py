"""notebook.load_params presets/overrides, cache keys and the compilation cache."""

import os
import subprocess
import sys

import pytest

from workbench import notebook as nb


@pytest.fixture
def root(tmp_path):
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "smoke.yaml").write_text("steps: 3\nlr: 0.001\nmodel:\n  layers: 2\n  name: tiny\n")
    return tmp_path


def test_load_params_and_overrides(root):
    p = nb.load_params("exp", "smoke", {"steps": 5, "model.layers": 4}, seed=[0, 1], root=root)
    assert p == {"steps": 5, "lr": 0.001, "model": {"layers": 4, "name": "tiny"}, "scale": "smoke", "seed": [0, 1]}
    assert nb.load_params("exp", "smoke", root=root)["steps"] == 3  # the preset file is not modified
    nested = nb.load_params("exp", "smoke", {"model": {"layers": 6}}, root=root)  # merged, not replaced
    assert nested["model"] == {"layers": 6, "name": "tiny"}
    with pytest.raises(KeyError, match="'model.depth'"):
        nb.load_params("exp", "smoke", {"model": {"depth": 6}}, root=root)


def test_unknown_override_is_named_with_known_keys(root):
    with pytest.raises(KeyError, match=r"'stpes'.*known keys: steps, lr, model, model\.layers"):
        nb.load_params("exp", "smoke", {"stpes": 5}, root=root)
    with pytest.raises(KeyError, match="model.depth"):
        nb.load_params("exp", "smoke", {"model.depth": 5}, root=root)


def test_bad_scale_missing_preset_type_and_reserved(root):
    with pytest.raises(ValueError, match="unknown scale 'huge'.*smoke, cpu, gpu, paper"):
        nb.load_params("exp", "huge", root=root)
    with pytest.raises(FileNotFoundError, match="cpu.yaml.*presets present: smoke"):
        nb.load_params("exp", "cpu", root=root)
    with pytest.raises(TypeError, match="'steps'"):
        nb.load_params("exp", "smoke", {"steps": "many"}, root=root)
    with pytest.raises(KeyError, match="SCALE / SEED"):
        nb.load_params("exp", "smoke", {"seed": 3}, root=root)


def test_cache_key_stable_and_order_free():
    a = nb.cache_key({"a": 1, "b": [1, 2], "c": {"x": 1.5}})
    assert a == nb.cache_key({"c": {"x": 1.5}, "b": [1, 2], "a": 1})
    assert a != nb.cache_key({"a": 2, "b": [1, 2], "c": {"x": 1.5}})
    assert len(a) == 16 and nb.checkpoint_dir("pre", {"a": 1}).name == f"pre-{nb.cache_key({'a': 1})}"
    assert nb.seeds(3) == [3] and nb.seeds([0, 1]) == [0, 1]


def test_use_compilation_cache_defaults_to_the_runners_folder(tmp_path):
    code = ("from workbench import notebook as nb; import jax; print(nb.use_compilation_cache()); "
            "print(jax.config.jax_persistent_cache_min_compile_time_secs)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    out = subprocess.run([sys.executable, "-c", code], env={**env, "WORKBENCH_CACHE": str(tmp_path)},
                         capture_output=True, text=True, check=True, timeout=120).stdout.split()
    assert out == [str(tmp_path / "jax-compilation"), "0"]  # the folder `workbench.reproduce` gives its kernels
    chosen = tmp_path / "mine"
    out = subprocess.run([sys.executable, "-c", code], env={**env, "JAX_COMPILATION_CACHE_DIR": str(chosen)},
                         capture_output=True, text=True, check=True, timeout=120).stdout.split()
    assert out[0] == str(chosen)  # a folder the user chose wins
