"""app.logs: FLARE_LOG_FORMAT=json gives one JSON object per line."""

from __future__ import annotations

import io
import logging

import orjson

from app.logs import JsonFormatter


def test_json_lines_with_time_level_logger_message_and_exc() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("flare.test-json")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("two\nlines %s", "here")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (orjson.loads(line) for line in lines)
    assert first["level"] == "warning" and first["logger"] == "flare.test-json"
    assert first["message"] == "two\nlines here" and "exc" not in first
    assert first["time"].endswith("Z") and first["time"][10] == "T"
    assert second["message"] == "failed" and "ValueError: boom" in second["exc"]
