"""structlog, configured once: contextvars, ISO UTC timestamps, JSON unless on a TTY,
and a last line of defence that masks secret-looking fields."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

SECRET_FIELDS = frozenset(
    {
        "authorization",
        "token",
        "access_token",
        "secret",
        "password",
        "api_hash",
        "api_key",
        "client_secret",
        "encryption_key",
        "key",
        "plaintext",
        "keys",
        "email",
        "hash",
    }
)
MASK = "***"


def mask_secrets(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for name in SECRET_FIELDS.intersection(event):
        event[name] = MASK
    return event


def configure_logging(level: str = "info", fmt: str = "auto") -> None:
    """Idempotent; called by the CLI before anything logs."""
    json_output = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_output
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            mask_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
