"""Structured log lines: one JSON object per state change, with the ids involved.

Nothing here may ever receive key material, nonces' secrets or request bodies.
"""

from __future__ import annotations

import json
import logging
from typing import Any

_events = logging.getLogger("certsmith.events")


def log_event(event: str, **fields: Any) -> None:
    """Log one state change, e.g. `log_event("order.created", order=..., account=...)`."""
    if _events.isEnabledFor(logging.INFO):
        record = {"event": event, **fields}
        _events.info(json.dumps(record, default=str, separators=(",", ":")))


class JsonLineFormatter(logging.Formatter):
    """Wraps plain log records as JSON lines; event records are already JSON."""

    def format(self, record: logging.LogRecord) -> str:
        ts = self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
        message = record.getMessage()
        if record.name == _events.name:
            return f'{{"ts":"{ts}",{message[1:]}'
        line = {"ts": ts, "level": record.levelname, "logger": record.name, "msg": message}
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, separators=(",", ":"))


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Per-request chatter from libraries would drown the state-change lines.
    for noisy in ("httpx", "httpcore", "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
