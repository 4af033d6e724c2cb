"""The whole-suite log check (tests/logs.py) must fail on a line that is not one JSON object
and on a line that carries a secret, and must not repeat the secret in its report."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import structlog

from tests import logs

REPO = Path(__file__).resolve().parents[2]

TOKEN = "ak_" + "x" * 43
GOOD = json.dumps({"event": "http.request", "status": 200, "request_id": "r-1"})


def _write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "child-1.jsonl"
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def test_json_object_lines_without_secrets_pass(tmp_path: Path) -> None:
    assert logs.violations(_write(tmp_path, GOOD, "", GOOD), ["SOME-SECRET-KEY"]) == []


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("Traceback (most recent call last):", "not JSON"),
        ('{"event": "cut in the mid', "not JSON"),
        ('["an", "array"]', "not one JSON object"),
        ('"a string"', "not one JSON object"),
    ],
)
def test_a_line_that_is_not_one_json_object_fails(tmp_path: Path, line: str, problem: str) -> None:
    assert logs.violations(_write(tmp_path, GOOD, line), []) == [f"child-1.jsonl:2: {problem}"]


@pytest.mark.parametrize(
    ("secret_field", "what"),
    [
        (f"Bearer {TOKEN}", "an API token"),
        ("AAAAA-BBBBB-CCCCC", "a game key"),
        ("KEY-" + "0123456789abcdef" * 2, "a test key (KEY-<hex>)"),
    ],
)
def test_a_json_line_shaped_like_a_secret_fails(
    tmp_path: Path, secret_field: str, what: str
) -> None:
    line = json.dumps({"event": "http.request", "authorization_seen": secret_field})
    found = logs.violations(_write(tmp_path, line), [])
    assert found == [f"child-1.jsonl:1: holds {what}"]
    assert secret_field not in " ".join(found)


def test_a_registered_secret_fails_wherever_it_is_in_the_line(tmp_path: Path) -> None:
    line = json.dumps({"event": "keys.uploaded", "detail": "first was TOPSECRET-PLAINTEXT-KEY"})
    found = logs.violations(_write(tmp_path, line), ["TOPSECRET-PLAINTEXT-KEY"])
    assert found == ["child-1.jsonl:1: holds a secret a test registered"]


def test_a_cli_message_for_a_person_is_exempt_from_json_but_not_from_secrets(
    tmp_path: Path,
) -> None:
    refusal = "autokey: no database at /srv/autokey.db; run this where `autokey serve` runs"
    assert logs.violations(_write(tmp_path, GOOD, refusal), []) == []
    leaking = f"autokey: token {TOKEN} refused"
    assert logs.violations(_write(tmp_path, leaking), []) == ["child-1.jsonl:1: holds an API token"]
    assert logs.violations(_write(tmp_path, "autokey failed"), []) == ["child-1.jsonl:1: not JSON"]


def test_short_registered_strings_are_ignored_to_avoid_false_alarms() -> None:
    before = set(logs._minted)
    logs.register("K1", "LONG-ENOUGH-KEY")
    assert logs._minted - before == {"LONG-ENOUGH-KEY"}


@pytest.mark.skipif(
    os.environ.get("AUTOKEY_TEST_LEAK") != "1", reason="run only by the session test below"
)
def test_leaks_on_purpose() -> None:
    structlog.get_logger("autokey.test").info("test.leak", detail=f"Bearer {TOKEN}")
    logs.keep("leak", "plain text, not JSON\n")


def test_a_session_whose_logs_leak_fails_although_every_test_passed(tmp_path: Path) -> None:
    done = subprocess.run(  # noqa: S603 - this interpreter running pytest
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"{__file__}::test_leaks_on_purpose",
        ],
        env={**os.environ, "AUTOKEY_TEST_LEAK": "1", "AUTOKEY_TEST_LOG_DIR": str(tmp_path)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "1 passed" in done.stdout, done.stdout
    assert done.returncode == pytest.ExitCode.TESTS_FAILED
    assert re.search(r"pytest\.jsonl:\d+: holds an API token", done.stdout)
    assert re.search(r"leak-\d+\.jsonl:1: not JSON", done.stdout)
    assert TOKEN not in done.stdout
