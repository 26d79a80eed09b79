"""`workbench train` on bad input: checked token files, refused resumes, one-line errors (`--debug`: traceback)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from workbench.train.cli import main

COMMON = ["--steps", "2", "--batch", "4", "--warmup", "1", "--no-progress", "--checkpoint-every", "2"]


def _save(path, arr):
    np.save(path, arr)
    return str(path)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_token_files_are_checked(tmp_path, capsys):
    rows = np.random.default_rng(0).integers(3, 200, (8, 16))
    huge = rows.astype(np.int64)
    huge[2, 5] = 2**32 + 7  # wrapped to 7 by a plain int32 cast
    neg, big = rows.copy(), rows.copy()
    neg[1, 1] = -1
    big[3, 4] = 100_000
    cases = {
        "float.npy": (rows.astype(np.float32) + 0.5, [], "dtype float32, but token ids must be integers"),
        "wide.npy": (huge, [], r"token id 4294967303 at [2, 5] is outside the vocabulary [0, 512) of preset 'tiny'"),
        "neg.npy": (neg, [], "token id -1 at [1, 1]"),
        "big.npy": (big, [], "token id 100000 at [3, 4] is outside the vocabulary [0, 512)"),
        "big_vocab.npy": (rows, ["--vocab-size", "100"], "outside the vocabulary [0, 100) of --vocab-size"),
        "flat.npy": (rows.reshape(-1), [], "shape (128,), expected 2 dimensions"),
        "empty.npy": (rows[:0], [], "shape (0, 16) holds no training rows"),
    }
    for name, (arr, extra, message) in cases.items():
        path = _save(tmp_path / name, arr)
        assert main(["--out-dir", str(tmp_path / "run"), "--data", path, *extra, *COMMON]) == 1, name
        line = _one_line_error(capsys)
        assert line.startswith("workbench train: error: --data ") and path in line and message in line, line
    (tmp_path / "text.npy").write_text("not numpy")
    assert main(["--out-dir", str(tmp_path / "run"), "--data", str(tmp_path / "text.npy"), *COMMON]) == 1
    assert "not a readable .npy array" in _one_line_error(capsys)
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing trained
    with pytest.raises(ValueError, match="dtype float32"):  # --debug: the exception itself
        main(["--out-dir", str(tmp_path / "run"), "--data", str(tmp_path / "float.npy"), "--debug", *COMMON])


def test_resume_with_other_settings_is_refused_in_one_line(tmp_path, capsys):
    data = _save(tmp_path / "tokens.npy", np.random.default_rng(0).integers(3, 200, (16, 12)).astype(np.int32))
    run = ["--out-dir", str(tmp_path / "run"), "--data", data, *COMMON]
    assert main(run) == 0
    saved = (tmp_path / "run" / "train_config.json").read_text()
    assert json.loads(saved)["run"]["preset"] == "tiny"
    capsys.readouterr()

    assert main([*run, "--lr", "0.002"]) == 1
    line = _one_line_error(capsys)
    assert "made with other settings (learning_rate 0.001 -> 0.002)" in line and "--allow-config-change" in line
    assert (tmp_path / "run" / "train_config.json").read_text() == saved  # not rewritten

    assert main([*run, "--preset", "tiny-large"]) == 1
    line = _one_line_error(capsys)
    assert "of another model" in line and "with other shapes" in line

    assert main([*run, "--lr", "0.002", "--allow-config-change"]) == 0
    record = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert record["learning_rate"] == 0.002
    assert record["changes"] == [{"step": 2, "fields": {"learning_rate": [0.001, 0.002]}}]


def test_entry_points_print_one_line_without_traceback(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    bad = _save(tmp_path / "f.npy", np.zeros((4, 8), np.float64))
    for cmd in ([sys.executable, "-m", "workbench.train", "--out-dir", str(tmp_path / "r"), "--data", bad],
                [sys.executable, "-m", "workbench.cli", "train", "--out-dir", str(tmp_path / "r"), "--data", bad]):
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
        assert out.stderr.strip().splitlines()[-1].startswith("workbench train: error: --data ")
    out = subprocess.run([sys.executable, "-m", "workbench.cli", "--debug", "train", "--out-dir",
                          str(tmp_path / "r"), "--data", bad], capture_output=True, text=True, env=env)
    assert out.returncode == 1 and "Traceback" in out.stderr and "ValueError" in out.stderr
