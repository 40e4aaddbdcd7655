"""One log format for every line the gateway prints, uvicorn's included: JSON (the default, for collectors)
or text (MEDIAGATE_LOG_FORMAT=text, for a terminal).

The standard library's logging with a JSON formatter, not structlog: uvicorn, aiohttp and every library we
use already log through it, so one formatter on the root handler (and uvicorn's `log_config`) covers them
all with no second logging system to bridge and no new dependency. A line from inside a request carries its
request id, model and provider from mediagate.reqctx, however deep in the engine it was logged.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import sys
import time
from typing import Any

import orjson

FORMAT_ENV = "MEDIAGATE_LOG_FORMAT"
FORMATS = ("json", "text")
# the request fields a line may carry (null when not known; `key` is a key's name, never its secret)
FIELDS = ("request_id", "key", "team", "model", "provider", "endpoint", "status", "error_code", "latency_ms")


def log_format() -> str:
    value = os.environ.get(FORMAT_ENV, "json").strip().lower()
    return value if value in FORMATS else "json"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    from mediagate import reqctx
    ctx = reqctx.current()
    out: dict[str, Any] = {k: getattr(record, k, None) for k in FIELDS}
    if ctx is not None:
        out["request_id"] = out["request_id"] or ctx.request_id
        out["model"] = out["model"] or ctx.model
        out["provider"] = out["provider"] or ctx.provider
        out["endpoint"] = out["endpoint"] or ctx.endpoint
        out["key"] = out["key"] or ctx.key
        out["team"] = out["team"] or ctx.team
    return out


def _utc_stamp(created: float) -> str:
    """`2026-01-02T03:04:05.678+00:00` as datetime's isoformat gives it, the second's text made once per second
    (every request logs a line); one tuple, so a thread never pairs one second with another's text."""
    global _stamp
    second = int(created)
    micros = round((created - second) * 1_000_000)   # datetime rounds to the microsecond, half to even, then cuts
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    cached = _stamp
    if cached[0] != second:
        cached = _stamp = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{cached[1]}.{micros // 1000:03d}+00:00"


_stamp: tuple[int, str] = (-1, "")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": _utc_stamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        try:
            return orjson.dumps(line, default=str).decode()   # a tenth of json.dumps' time, same compact text
        except TypeError:   # what orjson refuses (an int past 64 bits, a non-str key): the standard library's way
            return json.dumps(line, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """`time level logger message key=value...`: the known request fields only."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items() if v is not None)
        text = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}" + (f"  {extra}" if extra else "")
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def config(level: str = "INFO") -> dict[str, Any]:
    """A logging.config dictConfig: the root and uvicorn's loggers to one stderr handler in the chosen format.
    Passed to uvicorn as `log_config` too, so its workers (`serve --workers N`) set up the same."""
    formatter = "mediagate.logs.JsonFormatter" if log_format() == "json" else "mediagate.logs.TextFormatter"
    uvicorn = {"handlers": [], "level": level, "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"mediagate": {"()": formatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "mediagate", "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {"uvicorn": uvicorn, "uvicorn.error": dict(uvicorn), "uvicorn.access": dict(uvicorn)},
    }


def setup(level: str = "INFO") -> None:
    import logging.config
    logging.config.dictConfig(config(level))


def say(message: str, **fields: Any) -> None:
    """An operator-facing start/stop line, in the log format (never a bare print that a collector cannot parse)."""
    logging.getLogger("mediagate").info(message, extra=fields)
    sys.stderr.flush()
