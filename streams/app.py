"""The Faust application object, built from Settings (never at import time).

DESIGN.md, "Faust pitfalls": the app must not touch its loop or producer before it starts;
uvicorn drives the one event loop and Faust is started inside it (streams/runtime.py).
"""

from __future__ import annotations

from pathlib import Path

import faust

from app.config import Settings
from streams import faust_fixes


def build_faust_app(settings: Settings) -> faust.App:
    faust_fixes.apply()
    return faust.App(
        settings.app_id,
        broker=[f"kafka://{b.strip()}" for b in settings.kafka_bootstrap.split(",")],
        store="memory://",  # Faust keeps no table of ours (streams/stage.py)
        datadir=str(Path(settings.data_dir) / "faust"),
        web_enabled=False,
        # Faust tells every member where the owner of a partition answers: our API.
        canonical_url=settings.canonical_url,
        # Without this Faust waits forever at shutdown for replies that are never acked.
        stream_wait_empty=False,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=max(0.5, settings.session_timeout / 5),
        broker_rebalance_timeout=max(settings.session_timeout * 2, 10.0),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        topic_allow_declare=True,
        producer_acks=-1,
        # Faust's producer now carries only the registry's command replies: no linger, so a
        # registry POST does not wait for a batch to fill (the stages have their own).
        producer_linger=0.0,
        consumer_auto_offset_reset="earliest",
        reply_create_topic=True,
        autodiscover=False,
    )
