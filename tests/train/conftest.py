"""Train tests: a tiny decoder whose dims divide by 8, random tokens, a shared persistent compile cache."""

import os
import tempfile

import jax
import numpy as np
import pytest

CACHE = os.path.join(tempfile.gettempdir(), f"workbench-train-jax-cache-{os.getuid()}")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

from _lm import MODEL, init_params, token_data  # noqa: E402


@pytest.fixture(scope="session")
def model_cfg():
    return MODEL


@pytest.fixture(scope="session")
def params0():
    return init_params(0)


@pytest.fixture(scope="session")
def tokens() -> np.ndarray:
    return token_data()
