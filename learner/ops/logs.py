"""Logging set-up: readable text by default, one JSON object per line with ``--log-format json``.

JSON lines carry the time, level, logger and message, so a log pipeline can index them without
parsing free text.
"""

from __future__ import annotations

import logging
import sys
import time

import orjson


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


def status_line(service: object) -> None:
    """The live line ``learner run`` keeps at the bottom of a terminal: rate, lag, metric, version, drift."""
    now = time.monotonic()
    done = sum(service.checkpoint.offsets.values())  # type: ignore[attr-defined]
    last = getattr(status_line, "last", (now, done))
    rate = (done - last[1]) / max(now - last[0], 1e-9)
    status_line.last = (now, done)  # type: ignore[attr-defined]
    lag = sum(service.monitor.gateway.get("lag", {}).values())  # type: ignore[attr-defined]
    metrics = " ".join(f"{n} {w.get('all', 0):.4f}" for n, w in service.metrics.items())  # type: ignore[attr-defined]
    drifts = len(service.drifts)  # type: ignore[attr-defined]
    learning = "" if service.step.learning else "  LEARNING STOPPED (guard)"  # type: ignore[attr-defined]
    sys.stderr.write(f"\r\033[K{rate:>9,.0f} ev/s  lag {lag:>8,}  v{service.model_version}  {metrics}  "  # type: ignore[attr-defined]
                     f"drift {drifts}{learning}")
    sys.stderr.flush()
