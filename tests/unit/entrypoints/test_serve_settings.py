"""Settings of `serve`: workers and upload caps, read once and checked."""

from __future__ import annotations

import pytest

from autokey.entrypoints.settings import SettingsError, UploadLimits, load_settings


def test_workers_and_upload_caps_default_and_are_read() -> None:
    defaults = load_settings({"AUTOKEY_DATABASE_URL": "memory://"})
    assert (defaults.workers, defaults.uploads) == (0, UploadLimits())
    assert (defaults.uploads.max_bytes, defaults.uploads.max_lines) == (128 * 1024**2, 2_000_000)
    read = load_settings(
        {
            "AUTOKEY_DATABASE_URL": "memory://",
            "AUTOKEY_WORKERS": "3",
            "AUTOKEY_UPLOAD_MAX_BYTES": "1000",
            "AUTOKEY_UPLOAD_MAX_LINES": "10",
        }
    )
    assert (read.workers, read.uploads) == (3, UploadLimits(max_bytes=1000, max_lines=10))


def test_bad_workers_and_caps_are_all_listed() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(
            {
                "AUTOKEY_WORKERS": "-1",
                "AUTOKEY_UPLOAD_MAX_BYTES": "0",
                "AUTOKEY_UPLOAD_MAX_LINES": "many",
            }
        )
    assert [p.split()[0] for p in raised.value.problems] == [
        "AUTOKEY_WORKERS",
        "AUTOKEY_UPLOAD_MAX_BYTES",
        "AUTOKEY_UPLOAD_MAX_LINES",
    ]


@pytest.mark.parametrize(("workers", "lanes"), [(0, 2), (1, 2), (2, 1), (8, 1)])
def test_a_lone_worker_runs_two_batches_of_a_kind_and_each_of_several_one(
    workers: int, lanes: int
) -> None:
    settings = load_settings({"AUTOKEY_DATABASE_URL": "memory://", "AUTOKEY_WORKERS": str(workers)})
    assert settings.batch_lanes == lanes
