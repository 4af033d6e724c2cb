"""structlog, configured once: contextvars, ISO UTC timestamps, JSON unless on a TTY,
and a last line of defence that masks secret-looking fields.

Every line is one JSON object, whoever logs it: the standard library loggers of our
dependencies (aiohttp.server, psycopg.pool, asyncio, py.warnings ...) go through the same
processors via a root handler with structlog's `ProcessorFormatter` (first line of their
message only).

Exceptions are rendered as data (ADR 0014): the exception's type, the chain of causes and the
frames (file, line, function), never the message or local values. Messages of parser and driver
errors quote the bytes they choked on, and those can be an Authorization header.
"""

from __future__ import annotations

import errno
import json
import logging
import sys
import traceback
from collections.abc import Callable, MutableMapping
from types import TracebackType
from typing import Any, TextIO

import structlog

from autokey.adapters import json_text

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
MAX_FRAMES = 30


def mask_secrets(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for name in SECRET_FIELDS.intersection(event):
        event[name] = MASK
    return event


def describe_exception(error: BaseException) -> dict[str, Any]:
    """Type, frames and causes of `error` (and the errno name of an OSError); its message and
    locals are left out on purpose."""
    kind = type(error)
    described: dict[str, Any] = {
        "type": f"{kind.__module__}.{kind.__qualname__}",
        "frames": [
            f"{frame.f_code.co_filename}:{line} {frame.f_code.co_name}"
            for frame, line in traceback.walk_tb(error.__traceback__)
        ][-MAX_FRAMES:],
    }
    if isinstance(error, OSError) and (name := errno.errorcode.get(error.errno or 0)):
        described["errno"] = name  # EADDRINUSE says it all, safely
    cause = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    if cause is not None:
        described["cause"] = describe_exception(cause)
    return described


ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def exception_as_data(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace `exc_info` (True, an exception or a sys.exc_info() tuple) by `exception`."""
    exc_info = event.pop("exc_info", None)
    error: BaseException | None = None
    if exc_info is True:
        error = sys.exc_info()[1]
    elif isinstance(exc_info, BaseException):
        error = exc_info
    elif isinstance(exc_info, tuple):
        error = exc_info[1]
    if error is not None:
        event["exception"] = describe_exception(error)
    event.pop("stack_info", None)
    return event


def first_line_only(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """For other libraries' records: their further lines are dumps (asyncio appends the repr
    of the failed task and its exception's message), so only the first line is kept."""
    if isinstance(message := event.get("event"), str):
        event["event"] = message.split("\n", 1)[0]
    return event


def _json_line(event: MutableMapping[str, Any], default: Callable[[Any], Any]) -> str:
    """A line's JSON through orjson (ADR 0035), for the access line every request writes at
    `info`. Ids, instants and enum members are written as their text; anything else JSON has
    no type for goes to structlog's `default` (its `__structlog__`, else its repr). Lines stay
    ASCII, as `json.dumps` wrote them: a stream that cannot encode a character would
    otherwise replace it with an escape JSON does not have."""
    line = json_text.dumps(event, default).decode()
    return line if line.isascii() else json.dumps(json.loads(line), separators=(",", ":"))


class _RootHandler(logging.StreamHandler[TextIO]):
    """The one handler configure_logging puts on the root logger (replaced on reconfiguration)."""


def configure_logging(
    level: str = "info", fmt: str = "auto", stream: TextIO | None = None, *, final: bool = False
) -> None:
    """Idempotent; called by the CLI before anything logs. `stream` defaults to stderr.

    `final`: this is the process's only configuration (the CLI), so each logger is built
    once, on its first use, instead of on every call (4 of a filtered call's 5.4 µs). Tests
    reconfigure between cases and leave it off."""
    out = stream or sys.stderr
    json_output = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer(_json_line)
        if json_output
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        mask_secrets,
        exception_as_data,
    ]
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        # One write() per line (print() makes two): workers sharing a stderr never interleave.
        logger_factory=structlog.WriteLoggerFactory(out),
        cache_logger_on_first_use=final,
    )
    handler = _RootHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, first_line_only, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _RootHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    # Libraries never log at debug: aiosqlite's debug lines print every statement with its
    # parameters (sealed keys, token hashes). `debug` is for autokey's own lines.
    root.setLevel(max(numeric_level, logging.INFO))
    logging.captureWarnings(True)
