"""The changes agent: ``<prefix>.documents`` → documents table (→ fan-out, later stage).

Every message, from the API or from a producer writing directly, gets the checks of SPEC §8
here (tables/documents.py); one that fails is parked on ``<prefix>.documents.rejected``
with its original key and bytes and a ``flare-reason`` header, and processing goes on
(DESIGN.md invariant 6). Errors are caught per message: Faust acks a message even when
the agent raises (STYLE.md §8).
"""

from __future__ import annotations

import logging
from typing import Any

import faust

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
        self.table = app.Table(TABLE, default=None, partitions=settings.partitions,
                               schema=faust.Schema(key_type=bytes, key_serializer="raw",
                                                   value_serializer="json"))
        self.agent = app.agent(self.source, name="flare.changes")(self._process)
        self.accepted = 0
        #: The next stage (fan-out to deliveries), set by the delivery wiring; awaited per change.
        self.on_change = None
        self.rejected_count = 0

    async def _process(self, stream: faust.StreamT) -> None:
        async for event in stream.events():
            message = event.message
            try:
                change = parse_message(message.key, message.value, self.view.find_resource,
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
            applied = apply(self.table.get(key), change)
            if applied.changed:
                if applied.stored is None:
                    del self.table[key]
                else:
                    self.table[key] = applied.stored
            self.accepted += 1
            if self.on_change is not None:
                await self.on_change(change, applied)

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
