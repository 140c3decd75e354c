"""Logging set-up: readable text by default, one JSON object per line with ``--log-format json``.

JSON lines carry the time, level, logger and message, so a log pipeline can index them without
parsing free text.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING

import orjson

from learner.core.evaluation import shown

if TYPE_CHECKING:
    from learner.runtime.model.service import Service

__all__ = ["JsonFormatter", "configure", "status_line"]


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"ts": round(record.created, 3), "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
                 "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def configure(level: str, form: str) -> None:
    """Log to stderr at ``level``, as ``text`` or ``json``."""
    handler = logging.StreamHandler(sys.stderr)
    if form == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def status_line(service: Service) -> None:
    """The live line ``learner run`` keeps at the bottom of a terminal: rate, lag, metric, version, drift."""
    progress, now = service.progress(), time.monotonic()
    last = _last_line.get("at", (now, progress.done))
    rate = (progress.done - last[1]) / max(now - last[0], 1e-9)
    _last_line["at"] = (now, progress.done)
    metrics = shown(progress.metrics)
    learning = "" if progress.learning else "  LEARNING STOPPED (guard)"
    sys.stderr.write(f"\r\033[K{rate:>9,.0f} ev/s  lag {progress.lag:>8,}  v{progress.version}  {metrics}  "
                     f"drift {progress.drifts}{learning}")
    sys.stderr.flush()


_last_line: dict[str, tuple[float, int]] = {}
