"""The CLI framework: one-line errors with exit status 2, discovery of sub-commands."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vbayes.cli import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert "vbayes" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["no-such-command"], [], ["bench"], ["bench", "nope"]])
def test_bad_command_is_one_line_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error:" in err


def test_python_dash_m_entry_point() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "vbayes", "--version"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and proc.stdout.startswith("vbayes ")
