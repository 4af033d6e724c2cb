"""The directory in which `serve --workers N` keeps its workers' metrics."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from autokey.entrypoints.metrics import shared_directory


def test_a_supervisor_removes_the_directories_of_supervisors_that_no_longer_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead = tmp_path / f"autokey-metrics-{int(gone.stdout)}-abc"
    alive = tmp_path / f"autokey-metrics-{os.getppid()}-def"  # this test's parent runs
    other = tmp_path / "autokey-metrics-other"
    for directory in (dead, alive, other):
        directory.mkdir()
        (directory / "counter_1.db").write_bytes(b"x")
    with shared_directory() as mine:
        assert Path(mine).name.startswith(f"autokey-metrics-{os.getpid()}-")
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            [alive.name, other.name, Path(mine).name]
        )
    assert not Path(mine).exists()  # removed when the supervisor is done
