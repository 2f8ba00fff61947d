"""The changes stage: ``<prefix>.documents`` → documents table → fan-out offers.

Every message, from the API or from a producer writing directly, gets the checks of SPEC §8
here (tables/documents.py); one that fails is parked on ``<prefix>.documents.rejected``
with its original key and bytes and a ``flare-reason`` header, and processing goes on
(DESIGN.md invariant 6). An accepted change updates the documents table (highest revision
wins) and becomes one offer per subscription on ``<prefix>.deliveries``.

A batch stage (streams/stage.py: its own consumer group ``<app id>.changes``, commits
only after the acks of what it produced), not a Faust agent: see there why. Each record
keeps the source offset of the change that wrote it, and a delete leaves a mark, so a
change read again after a crash changes nothing; only the change that wrote a record is
offered again (``tables.documents.apply``), and the dispatcher ignores what its
subscribers already have.
The table is kept in ``<app id>-documents-changelog`` (the name Faust used for it before).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from app.config import Settings
from streams import metrics
from streams.registry_view import RegistryView
from streams.stage import Stage, Table, decode
from tables.documents import Applied, Change, Rejected, apply, parse_message

#: Offers for one change: (deliveries key, value) pairs, built by the delivery stage.
OfferBuilder = Callable[[Change, Applied], list[tuple[bytes, bytes]]]


def changes_group(settings: Settings) -> str:
    return f"{settings.app_id}.changes"


def changelog_topic(settings: Settings) -> str:
    return f"{settings.app_id}-documents-changelog"


class Changes(Stage):
    """The documents topic, table and batch loop of one Flare process."""

    label = "changes"

    def __init__(self, settings: Settings, view: RegistryView) -> None:
        super().__init__(settings, settings.topic("documents"), changes_group(settings),
                         changelog_topic(settings))
        self.view = view
        self.rejected_topic = settings.topic("documents.rejected")
        self.deliveries_topic = settings.topic("deliveries")
        #: The next stage: offers for a change (set by the delivery wiring).
        self.offers: OfferBuilder | None = None
        self.accepted = 0
        self.rejected_count = 0

    async def process(self, message: Any, table: Table) -> None:
        try:
            change = parse_message(message.key, message.value, self.view.resource_index(),
                                   message.timestamp)
        except Rejected as exc:
            await self._reject(message, exc.reason)
            return
        except Exception as exc:  # a bug must park the message, not stop the partition
            self.log.exception("unexpected error on %s[%s]@%s", message.topic,
                               message.partition, message.offset)
            await self._reject(message, f"internal error: {exc.__class__.__name__}")
            return
        key = message.key
        applied = apply(decode(table.get(key)), change, message.offset)
        if applied.changed:
            await self.write(message.partition, key,
                             None if applied.stored is None else orjson.dumps(applied.stored))
        self.accepted += 1
        if self.offers is not None and applied.offer:
            for offer_key, offer_value in self.offers(change, applied):
                await self.produce(self.deliveries_topic, offer_value, key=offer_key)

    async def _reject(self, message: Any, reason: str) -> None:
        self.rejected_count += 1
        metrics.change_rejected(reason)
        await self.produce(
            self.rejected_topic, message.value, key=message.key,
            headers=[("flare-reason", reason.encode()),
                     ("flare-source",
                      f"{message.topic}/{message.partition}/{message.offset}".encode())])

    # -- reads for the API -----------------------------------------------------------
    def owner_of(self, url: str) -> str | None:
        """The canonical URL of the Flare process that holds this document's partition."""
        return self.owner_url(url.encode())

    def local(self, url: str) -> dict[str, Any] | None:
        return self.get(url.encode())
