"""One logging configuration for every logger in the process (ours, uvicorn's, Alembic's, the libraries'):
``text`` (one readable line) or ``json`` (one JSON object per line), on stderr.

What a line is about — integration, inbound id, outbox id, alias, traceparent — travels in a context variable:
the webhook handler and the worker's per-row task set it (``context``/``bind``), and every line logged while it
is set carries it, in either format.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import traceback
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

FORMATS = ("text", "json")
#: The fields a line may carry besides time, level, logger and message (in this order).
CONTEXT_FIELDS = ("integration", "inbound_id", "outbox_id", "alias", "traceparent")

_context: ContextVar[dict[str, Any] | None] = ContextVar("alertbridge_log_context", default=None)

# Loggers that say too much at INFO: httpx prints every URL, Alembic lists its plugins at every start.
_QUIET = {"httpx": logging.WARNING, "httpcore": logging.WARNING, "alembic.runtime.plugins": logging.WARNING}
# Loggers that come with handlers of their own; they are made to use ours (propagate to the root).
_ADOPTED = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "alembic")


def current() -> dict[str, Any]:
    return dict(_context.get() or {})


def bind(**fields: Any) -> None:
    """Add fields to the current context for the rest of the current task (each asyncio task has its own copy)."""
    _context.set({**(_context.get() or {}), **{k: v for k, v in fields.items() if v is not None}})


@contextlib.contextmanager
def context(**fields: Any) -> Iterator[None]:
    """Add fields to every line logged inside the block."""
    token = _context.set({**(_context.get() or {}), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Copies the context's fields onto each record (a field given with ``extra=`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_context.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: getattr(record, k) for k in CONTEXT_FIELDS if getattr(record, k, None) is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: time (UTC, ISO 8601), level, logger, message, context fields,
    and the exception's traceback as a string."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            line["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message [integration=... outbox_id=...]``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = _fields(record)
        if not fields:
            return text
        first, sep, rest = text.partition("\n")  # after the message, before a traceback
        return f"{first} [{' '.join(f'{k}={v}' for k, v in fields.items())}]{sep}{rest}"


def configure(level: str = "INFO", fmt: str = "text", stream: TextIO | None = None) -> None:
    """Configure logging for the whole process (replaces whatever was configured before)."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    for name in _ADOPTED:
        adopted = logging.getLogger(name)
        for old in list(adopted.handlers):
            adopted.removeHandler(old)
        adopted.propagate = True
    for name, quiet in _QUIET.items():
        logging.getLogger(name).setLevel(quiet)
    logging.captureWarnings(True)  # warnings become log lines too (one format for everything)
