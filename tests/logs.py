"""The whole-suite log check: every log line autokey writes while the tests run is kept in a
session directory, and after the last test every line must be one JSON object holding no token,
key plaintext or other secret.

Where the lines come from:
- in-process autokey code (structlog and every stdlib logger, through the same pipeline as in
  production): `start_session` points `configure_logging` at `<dir>/pytest.jsonl`, and
  `tests.http.captured_logs` copies what it captured there before pointing logging back;
- `autokey` subprocesses: tests/integration/server.py sends the stderr of every `autokey serve`
  it starts, and of every CLI command it runs, to `<dir>/<name>-<n>.jsonl` (`child_log`/`keep`).

What counts as a secret: anything shaped like an API token (`ak_...`) or a game key (five
groups of five, as G2A and most tests write them, or `KEY-<hex>` from tests/builders.py), and
every string a test registered with `register` (uploaded key plaintexts, configured secrets).

When it runs: `pytest_sessionfinish` in tests/conftest.py calls `check_session` after every
test, fixture teardown and subprocess has finished; a violation sets the exit status to 1 and
the terminal summary lists each one (file, line, what is wrong; never the secret itself).
Under pytest-xdist each worker checks its own directory with the secrets its own tests
registered, and hands its figures to the controller, which adds them up and fails the run.
A clean temporary directory is removed; AUTOKEY_TEST_LOG_DIR is always kept.
tests/unit/test_log_check.py proves that the checker fails on a non-JSON line and on a secret.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from autokey.entrypoints.logconfig import configure_logging

SHAPES = {
    "an API token": re.compile(r"ak_[A-Za-z0-9_-]{16,}"),
    "a game key": re.compile(r"\b[A-Z0-9]{5}(?:-[A-Z0-9]{5}){2,}\b"),
    "a test key (KEY-<hex>)": re.compile(r"KEY-[0-9a-f]{32}"),
}
CLI_MESSAGE = "autokey: "
"""A CLI command's one-line message for the person who ran it (a refusal, a usage error) is
not a log line: it is exempt from the JSON rule, never from the secret rules."""
MIN_SECRET_LENGTH = 8
"""Shorter registered strings ("K1") would match by accident; tests use longer keys."""

_minted: set[str] = set()
_counter = itertools.count(1)


class _Session:
    directory: Path
    stream: TextIO
    temporary: bool


def register(*secrets: str) -> None:
    """Remember strings that must never appear in a log line (key plaintexts, secrets)."""
    _minted.update(s for s in secrets if len(s) >= MIN_SECRET_LENGTH)


def start_session(worker: str = "") -> Path:
    """Create the session directory (AUTOKEY_TEST_LOG_DIR, or a new temporary one; a pytest-xdist
    `worker` gets a directory of its own, under AUTOKEY_TEST_LOG_DIR when it is set) and point
    in-process logging at its pytest.jsonl."""
    given = os.environ.get("AUTOKEY_TEST_LOG_DIR")
    if given:
        directory = Path(given, worker)
    else:
        directory = Path(tempfile.mkdtemp(prefix=f"autokey-test-logs-{worker}{worker and '-'}"))
    directory.mkdir(parents=True, exist_ok=True)
    _Session.directory, _Session.temporary = directory, not given
    _Session.stream = (directory / "pytest.jsonl").open("a", encoding="utf-8", buffering=1)
    resume()
    return directory


def resume() -> None:
    """Point in-process logging (back) at the session file, as production renders it."""
    configure_logging("debug", "json", stream=_Session.stream)


def keep(name: str, text: str) -> None:
    """Add lines a subprocess wrote (its captured stderr) to the session directory."""
    with child_log(name).open("a", encoding="utf-8") as out:
        out.write(text)


def child_log(name: str) -> Path:
    """A new file in the session directory for one subprocess's stderr."""
    return _Session.directory / f"{name}-{next(_counter)}.jsonl"


def violations(path: Path, secrets: Iterable[str]) -> list[str]:
    """What is wrong with each line of `path`: not one JSON object, or carrying a secret."""
    found = []
    finder = _Finder(secrets)
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path.name}:{number}"
            if not line.startswith(CLI_MESSAGE):
                try:
                    parsed = json.loads(line)
                except ValueError:
                    found.append(f"{where}: not JSON")
                    parsed = {}
                if not isinstance(parsed, dict):
                    found.append(f"{where}: not one JSON object")
            found.extend(
                f"{where}: holds {what}" for what, shape in SHAPES.items() if shape.search(line)
            )
            if finder.search(line):
                found.append(f"{where}: holds a secret a test registered")
    return found


class _Finder:
    """Finds any of many registered strings in a line with one dict lookup per character
    (secrets indexed by their first MIN_SECRET_LENGTH characters); a regex alternation of
    thousands of keys is far too slow over a whole suite's logs."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._by_prefix: dict[str, list[str]] = {}
        for secret in secrets:
            self._by_prefix.setdefault(secret[:MIN_SECRET_LENGTH], []).append(secret)

    def search(self, line: str) -> bool:
        by_prefix = self._by_prefix
        for start in range(len(line) - MIN_SECRET_LENGTH + 1):
            candidates = by_prefix.get(line[start : start + MIN_SECRET_LENGTH])
            if candidates and any(line.startswith(s, start) for s in candidates):
                return True
        return False


def check_session() -> tuple[int, list[str]]:
    """(files checked, violations) over the whole session directory; a temporary directory
    is removed when it is clean (kept, and named in the summary, when it is not)."""
    _Session.stream.flush()
    files = sorted(_Session.directory.glob("*.jsonl"))
    found = [v for path in files for v in violations(path, _minted)]
    if _Session.temporary and not found:
        shutil.rmtree(_Session.directory)
    return len(files), found
