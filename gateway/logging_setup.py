"""Logging: one JSON object per line (production default) or plain text, with request fields.

Every record logged while a request runs carries that request's ``decision_id``, ``trace_id``,
``route`` and, once the caller is known, ``tenant``: the HTTP middleware opens a
``RequestLogFields`` in a context variable and the audit recorder fills in the tenant. The
middleware also writes one access line per request (logger ``genguard.access``, with
``method``, ``path``, ``status``, ``latency_ms``), which replaces uvicorn's own access log.

Secrets stay out of the log: no code logs headers, prompts or query strings, and as a second
line of defence every message is scrubbed of anything shaped like a GenGuard API key or a
bearer token before it is written.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.settings import Settings

__all__ = [
    "JsonFormatter",
    "RequestLogFields",
    "TextFormatter",
    "current_log_fields",
    "log_config",
    "open_log_fields",
    "reset_log_fields",
    "scrub",
]

_SECRETS = re.compile(
    r"gg_[a-z0-9]{12}_[A-Za-z0-9_-]{8,}"  # GenGuard API keys (gateway.keys.KEY_PATTERN)
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=-]+"  # Authorization header values
    r"|sk-[A-Za-z0-9_-]{16,}"  # upstream (OpenAI-style) keys
)
_MASK = "[redacted]"

# fields that a log call may pass with ``extra=`` and that the JSON line carries
_EXTRA_FIELDS = ("status", "latency_ms", "method", "path", "action")


@dataclass(slots=True)
class RequestLogFields:
    """What every log line of one request says about it (mutable: the tenant comes later)."""

    decision_id: str
    trace_id: str
    route: str
    tenant: str | None = None


_CURRENT: contextvars.ContextVar[RequestLogFields | None] = contextvars.ContextVar(
    "genguard_log_fields", default=None
)


def open_log_fields(fields: RequestLogFields) -> contextvars.Token[RequestLogFields | None]:
    return _CURRENT.set(fields)


def reset_log_fields(token: contextvars.Token[RequestLogFields | None]) -> None:
    _CURRENT.reset(token)


def current_log_fields() -> RequestLogFields | None:
    return _CURRENT.get()


def scrub(text: str) -> str:
    """``text`` with API keys and bearer tokens masked."""
    return _SECRETS.sub(_MASK, text)


def _message(record: logging.LogRecord, formatter: logging.Formatter) -> str:
    message = record.getMessage()
    if record.exc_info:
        message = f"{message}\n{formatter.formatException(record.exc_info)}"
    if record.stack_info:
        message = f"{message}\n{formatter.formatStack(record.stack_info)}"
    return scrub(message)


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", "decision_id", "tenant", "route", "trace_id", …}``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _message(record, self),
        }
        fields = record.__dict__.get("log_fields") or _CURRENT.get()
        if fields is not None:
            line["decision_id"] = fields.decision_id
            line["trace_id"] = fields.trace_id
            line["route"] = fields.route
            if fields.tenant is not None:
                line["tenant"] = fields.tenant
        for name in _EXTRA_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = scrub(value) if isinstance(value, str) else value
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``<time> <LEVEL> <logger> [<decision id>] <message>`` for reading in a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        fields = record.__dict__.get("log_fields") or _CURRENT.get()
        where = f" [{fields.decision_id}]" if fields is not None else ""
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        return f"{stamp} {record.levelname:<7} {record.name}{where} {_message(record, self)}"


def log_config(settings: Settings) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the gateway and uvicorn (``uvicorn.run(log_config=…)``;
    each uvicorn worker process applies it again), writing to stderr."""
    formatter = JsonFormatter if settings.json_logs else TextFormatter
    level = settings.log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"genguard": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "genguard",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            # uvicorn's loggers propagate to the root handler (one format for everything);
            # its access log is replaced by genguard.access, which knows the decision id
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }
