"""The operator CLI run in-process, as an operator's shell would run it."""

from __future__ import annotations

import sys

import pytest

from training.cli import main


@pytest.fixture
def cli(monkeypatch, capsys):
    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["restauro", *map(str, args)])
        with pytest.raises(SystemExit) as exit_info:
            main()
        out = capsys.readouterr()
        return exit_info.value.code or 0, out.out, out.err

    return run
