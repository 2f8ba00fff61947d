"""The changes agent: ``<prefix>.documents`` → documents table (→ fan-out, later stage).

Every message, from the API or from a producer writing directly, gets the checks of SPEC §8
here (tables/documents.py); one that fails is parked on ``<prefix>.documents.rejected``
with its original key and bytes and a ``flare-reason`` header, and processing goes on
(DESIGN.md invariant 6). Errors are caught per message: Faust acks a message even when
the agent raises (STYLE.md §8).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
import orjson

from app.config import Settings
from streams.registry_view import RegistryView
from tables.documents import Rejected, apply, parse_message

log = logging.getLogger("flare.changes")

TABLE = "documents"


class Changes:
    """The documents topic, table and agent of one Faust app."""

    def __init__(self, app: faust.App, settings: Settings, view: RegistryView) -> None:
        self.app = app
        self.view = view
        self.source = app.topic(settings.topic("documents"), key_type=bytes, value_type=bytes,
                                key_serializer="raw", value_serializer="raw",
                                partitions=settings.partitions)
        self.rejected = app.topic(settings.topic("documents.rejected"), key_type=bytes,
                                  value_type=bytes, key_serializer="raw", value_serializer="raw")
        # key_type=bytes as well as the schema: Faust picks the changelog's key serializer
        # from key_type, and without it recovery loops on "expected a JSON value" (DESIGN.md).
        self.table = app.Table(TABLE, default=None, partitions=settings.partitions,
                               key_type=bytes,
                               schema=faust.Schema(key_type=bytes, key_serializer="raw",
                                                   value_serializer="json"))
        self.agent = app.agent(self.source, name="flare.changes")(self._process)
        self.accepted = 0
        #: The next stage (fan-out to deliveries), set by the delivery wiring; awaited per change.
        self.on_change = None
        self.rejected_count = 0
        self._changelog = ""  # the table's changelog topic, named once the app is final

    async def _process(self, stream: faust.StreamT) -> None:
        self._changelog = self.table.changelog_topic.get_topic_name()
        async for event in stream.events():
            message = event.message
            try:
                change = parse_message(message.key, message.value, self.view.resource_index(),
                                       int(message.timestamp * 1000))
            except Rejected as exc:
                await self._reject(message, exc.reason)
                continue
            except Exception as exc:  # a bug must park the message, not stop the partition
                log.exception("unexpected error on %s[%s]@%s", message.topic, message.partition,
                              message.offset)
                await self._reject(message, f"internal error: {exc.__class__.__name__}")
                continue
            key = message.key
            # The store itself, like _write: the table's own get adds only a sensor call.
            applied = apply(self.table.data.get(key), change)
            if applied.changed:
                await self._write(key, applied.stored, message.partition)
            self.accepted += 1
            if self.on_change is not None:
                await self.on_change(change, applied)

    async def _write(self, key: bytes, stored: dict[str, Any] | None, partition: int) -> None:
        """Write one key of the documents table: its store, then its changelog record.

        What ``self.table[key] = stored`` does, without Faust's per-write machinery (a
        future message, the producer buffer and its task, sensors): about 15 % of the
        agent's CPU per change (docs/benchmarks.md). The record is the one Faust would write
        (raw key, JSON value, the source partition) and goes through Faust's producer, which
        Faust flushes before it commits the source offsets: a committed change is always in
        the changelog (DESIGN.md invariant 1), as with ``table[key] = ...``.
        """
        data = self.table.data
        if stored is None:
            del data[key]
            value = None
        else:
            data[key] = stored
            value = orjson.dumps(stored)
        sent = await self.app.producer.send(self._changelog, key, value, partition, None, None)
        sent.add_done_callback(self._changelog_written)

    def _changelog_written(self, sent: asyncio.Future) -> None:
        """Record the changelog offset in the store (RocksDB: where recovery resumes)."""
        if sent.cancelled() or sent.exception() is not None:
            # Faust's own table writes only log this too; the producer retried already.
            log.error("documents changelog write failed: %r",
                      None if sent.cancelled() else sent.exception())
            return
        metadata = sent.result()
        self.table.data.set_persisted_offset(metadata.topic_partition, metadata.offset)

    async def _reject(self, message: Any, reason: str) -> None:
        self.rejected_count += 1
        await self.rejected.send(
            key=message.key, value=message.value,
            headers={
                "flare-reason": reason.encode(),
                "flare-source": f"{message.topic}/{message.partition}/{message.offset}".encode(),
            },
        )

    # -- reads for the API -----------------------------------------------------------
    def owner_url(self, url: str) -> str | None:
        """The canonical URL of the Flare process that holds this document's partition."""
        try:
            return str(self.app.router.key_store(TABLE, url.encode()))
        except Exception:  # no assignment yet, or the partition is between owners
            return None

    def local(self, url: str) -> dict[str, Any] | None:
        return self.table.get(url.encode())
