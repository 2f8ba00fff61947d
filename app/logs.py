"""Log set-up for ``flare start``: plain text lines, or one JSON object per line.

``FLARE_LOG_FORMAT=json`` gives ``{"time", "level", "logger", "message", "exc"?}`` per line,
for log shippers; uvicorn's own loggers go through the same handler (uvicorn is started
with ``log_config=None``). Nothing is logged per change or per delivery at info level:
rebalances, start, stop and failures are.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import orjson

TEXT_FORMAT = "[%(asctime)s] %(levelname)s %(name)s: %(message)s"
#: aiokafka and httpx (a line per delivery) are chatty at info; warnings still show.
NOISY = ("aiokafka", "httpx")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (a traceback goes into ``exc``)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, timezone.utc)
                    .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()


class BrokerDownFilter(logging.Filter):
    """While a broker is down, aiokafka logs an ERROR per connection attempt of every
    client (about 300 lines a second, seen in tests/integration/test_broker_restart.py).
    streams/runtime.py says once that Kafka is unreachable and once that it is back."""

    REPEATED = ("Unable connect to node", "Unable to update metadata",
                "Unable to request metadata", "Group Coordinator Request failed",
                "Marking the coordinator dead", "Failed fetch offsets",
                "Failed fetch messages from", "Heartbeat send request failed",
                "Error sending HeartbeatRequest")

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name.startswith("aiokafka") and isinstance(record.msg, str)
                    and record.msg.startswith(self.REPEATED))


def configure_logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(BrokerDownFilter())
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    logging.getLogger("aiokafka.consumer.group_coordinator").addFilter(_routine_rebalance)


def _routine_rebalance(record: logging.LogRecord) -> bool:
    """aiokafka warns on every heartbeat that meets a rebalance: that is how a member
    learns of one when a process joins or leaves, not a problem. Shown at info level."""
    if record.levelno == logging.WARNING and "because it is rebalancing" in record.getMessage():
        record.levelno, record.levelname = logging.INFO, "INFO"
        return logging.getLogger("aiokafka").isEnabledFor(logging.INFO)
    return True


def private_targets_line(allowed: bool) -> str:
    """The first log line of ``flare start``: whether subscriber URLs may point at
    loopback or private addresses (``make run`` allows them, ``flare start`` does not)."""
    if allowed:
        return ("private subscriber targets: allowed (FLARE_ALLOW_PRIVATE_TARGETS=true;"
                " for one machine only)")
    return ("private subscriber targets: refused (FLARE_ALLOW_PRIVATE_TARGETS=false;"
            " set it to true to notify receivers on this machine)")
