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

The documents topic is compacted, so its last record of a key must be the table's winner:
a put that loses to a different stored document makes this stage produce the stored one
again (a repair, ``tables.documents.repair_message``), committed after its ack like
everything the stage produces; a repair read back changes nothing and is not offered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import orjson

from app.config import Settings
from streams import metrics
from streams.registry_view import REGISTRY_HEADER, RegistryUnavailable, RegistryView
from streams.stage import (Parked, Stage, StageBroken, Table, check_size, decode, header,
                           record_limit)
from tables.documents import (REPAIR_HEADER, Applied, Change, Rejected, apply, parse_message,
                              repair_message)

#: Offers for one change: (deliveries key, value, partition), built by the delivery stage.
#: The int argument is the change's offset on the documents topic.
OfferBuilder = Callable[[Change, Applied, int], list[tuple[bytes, bytes, int]]]
#: Seconds between two looks for delete marks past ``delete_mark_ttl`` (a week by
#: default; a look reads the whole table, in the background).
EXPIRE_EVERY = 3600.0
#: Seconds a background read of the whole table (the marks' expiry, the purge of deleted
#: resources) rests after each chunk: at millions of documents it takes minutes, not a
#: core, and the stage's loop goes on meanwhile.
SCAN_PAUSE = 0.05
#: How a delete mark's record starts (tables/documents.py writes it with orjson).
MARK = b'{"v":1,"deleted":true'
#: A message without a registry mark that names no known resource makes the view catch
#: up with the registry topics before it is rejected, at most this often (seconds).
CATCH_UP_EVERY = 0.5


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
        #: records stated again on the documents topic (tables/documents.py, repairs)
        self.repairs = 0
        self._caught_up_at = 0.0
        self._marks_expired_at = time.monotonic()
        self.limit = record_limit(settings)
        #: the resource ids the tables were last purged against (SPEC §5: a deleted
        #: resource's documents go), and the registry index they were read from
        self._resources_seen: set[str] = set()
        self._index_seen: object = None
        self._purging: asyncio.Task | None = None
        self._expiring: asyncio.Task | None = None

    async def process(self, message: Any, table: Table) -> None:
        """Steps: wait for the registry the change was accepted against; decide (pure);
        encode and size every record; only then write the table and produce the offers,
        so a message that cannot be handled is parked before anything of it is written."""
        mark = header(message, REGISTRY_HEADER)
        await self._registry_at(mark)
        change = await self._parse(message, mark)
        key = message.key
        applied = apply(decode(table.get(key)), change, message.offset)
        record = None
        if applied.changed and applied.stored is not None:
            record = _encode(applied.stored, "the stored document")
            check_size(self.limit, key, record, what="the stored document")
        repair = None
        if applied.repair is not None:
            repair = repair_message(change.url, applied.repair, message.offset)
            check_size(self.limit, key, repair[0], repair[1], what="the repair")
        offers: list[tuple[bytes, bytes, int]] = []
        if self.offers is not None and applied.offer:
            try:
                offers = self.offers(change, applied, message.offset)
            except (TypeError, ValueError) as exc:  # orjson: nesting, integers, text
                raise Parked(f"the notification cannot be encoded: {exc}") from None
            if offers:
                check_size(self.limit, offers[0][0], offers[0][1], what="a notification")
        # Writes: nothing below depends on the message any more.
        if applied.changed:
            await self.write(message.partition, key, record)
        self.accepted += 1
        if repair is not None:
            # The key's last record must be the table's winner (compaction keeps it): in
            # the message's partition, and committed only once acknowledged (stage.py).
            self.repairs += 1
            value, headers, timestamp_ms = repair
            await self.produce(self.source, value, key=key, partition=message.partition,
                               headers=headers, timestamp_ms=timestamp_ms)
        if offers:
            headers = [(REGISTRY_HEADER, self.view.mark())]
            for offer_key, offer_value, partition in offers:
                await self.produce(self.deliveries_topic, offer_value, key=offer_key,
                                   partition=partition, headers=headers)

    async def _registry_at(self, mark: bytes | None) -> None:
        """Invariant 7: decide against a registry at least as new as the one the change
        was accepted against (another process may have created its resource just now)."""
        if mark is not None and not self.view.reached(mark):
            try:
                await self.view.reach(mark)
            except RegistryUnavailable as exc:
                raise StageBroken(f"the registry view did not reach {mark!r}: {exc}") from exc

    async def _parse(self, message: Any, mark: bytes | None) -> Change:
        def parse() -> Change:
            return parse_message(message.key, message.value, self.view.resource_index(),
                                 message.timestamp, header(message, REPAIR_HEADER))
        try:
            return parse()
        except Rejected as exc:
            # A direct producer carries no mark: its resource may be newer than this view.
            if (mark is None and "could not found a resource" in exc.reason
                    and time.monotonic() - self._caught_up_at >= CATCH_UP_EVERY):
                self._caught_up_at = time.monotonic()
                try:
                    await self.view.catch_up()
                except Exception as caught:
                    raise StageBroken(f"the registry view did not catch up: {caught!r}") from caught
                try:
                    return parse()
                except Rejected as again:
                    raise Parked(again.reason) from None
            raise Parked(exc.reason) from None

    async def park(self, message: Any, reason: str) -> None:
        self.rejected_count += 1
        metrics.change_rejected(reason)
        headers = [("flare-reason", reason.encode()),
                   ("flare-source", f"{message.topic}/{message.partition}/{message.offset}".encode())]
        # The original bytes, or as much of them as a record can carry.
        value, room = message.value, self.limit - PARK_HEADROOM - len(message.key or b"")
        if value is not None and len(value) > room:
            headers.append(("flare-truncated", str(len(value)).encode()))
            value = value[:room]
        await self.produce(self.rejected_topic, value, key=message.key, headers=headers)

    # -- SPEC §5: a deleted resource's documents go; old delete marks go -----------------
    async def before_batch(self) -> None:
        if (time.monotonic() - self._marks_expired_at >= EXPIRE_EVERY
                and (self._expiring is None or self._expiring.done())):
            self._marks_expired_at = time.monotonic()
            self._expiring = asyncio.create_task(
                self._expire_marks(time.time() - self.settings.delete_mark_ttl),
                name="flare-expire-marks")
        index = self.view.resource_index()
        if index is self._index_seen:
            return
        self._index_seen = index
        now = set(self.view.resources)
        gone, self._resources_seen = self._resources_seen - now, now
        if gone:  # in the background, as after an assignment
            self._start_purge()

    async def on_tables(self, assigned: list) -> None:
        # Resources deleted while this process did not own a partition: any record whose
        # resource the (caught up) view no longer has.
        self._index_seen = self.view.resource_index()
        self._resources_seen = set(self.view.resources)
        # In the background: a whole table is read, which at millions of documents would
        # hold up readiness for seconds; records of unknown resources are no documents
        # meanwhile (tables/documents.py apply, the API's reads).
        self._start_purge()

    async def _close(self) -> None:
        self._stop_purge()
        await super()._close()

    async def stop(self) -> None:
        self._stop_purge()
        await super().stop()

    def _start_purge(self) -> None:
        if self._purging is not None:
            self._purging.cancel()
        self._purging = asyncio.create_task(self._purge_unknown(), name="flare-purge")

    def _stop_purge(self) -> None:
        """Stop the background reads of the table (purge, marks' expiry)."""
        for task in (self._purging, self._expiring):
            if task is not None:
                task.cancel()
        self._purging = self._expiring = None

    async def _purge_unknown(self) -> None:
        """Drop every record whose resource the view does not have."""
        def unknown(value: bytes | None) -> bool:
            return value is not None and _resource_of(value) not in self._resources_seen
        dropped = await self._drop_where(unknown, "the purge of unknown resources")
        if dropped:
            self.log.info("dropped %d documents of deleted resources", dropped)

    async def _expire_marks(self, before: float) -> None:
        """Drop the marks of documents deleted before ``before`` (Unix seconds): bounded
        growth (``delete_mark_ttl``)."""
        def expired(value: bytes | None) -> bool:
            return (value is not None and value.startswith(MARK)
                    and orjson.loads(value)["updatedAt"] < before)
        dropped = await self._drop_where(expired, "the expiry of delete marks")
        if dropped:
            self.log.info("dropped %d delete marks older than delete_mark_ttl", dropped)

    async def _drop_where(self, doomed: Callable[[bytes | None], bool], what: str) -> int:
        """Drop every record ``doomed`` says, reading the whole table in the background a
        chunk at a time (resting ``SCAN_PAUSE`` after each); a record is checked again
        under the stage's lock before it is dropped (a put may have come meanwhile).
        Returns how many went."""
        dropped = 0
        try:
            async for partition, chunk in self.scan():
                await asyncio.sleep(SCAN_PAUSE)
                keys = [key for key, value in chunk if doomed(value)]
                if not keys:
                    continue
                async with self._lock:
                    table = self.tables.get(partition)
                    for key in keys:
                        if table is not None and doomed(table.get(key)):
                            await self.write(partition, key, None)
                            dropped += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a table closed under it (a failure restarts the stage)
            self.log.info("%s stopped: %r", what, exc)
        return dropped

    # -- reads for the API -----------------------------------------------------------
    def owner_of(self, url: str) -> str | None:
        """The canonical URL of the Flare process that holds this document's partition."""
        return self.owner_url(url.encode())

    def local(self, url: str) -> dict[str, Any] | None:
        return self.get(url.encode())


#: Room kept for the headers of a parked copy (its reason and source).
PARK_HEADROOM = 2048


def _encode(record: dict[str, Any], what: str) -> bytes:
    try:
        return orjson.dumps(record)
    except (TypeError, ValueError) as exc:  # orjson.JSONEncodeError is a TypeError
        raise Parked(f"{what} cannot be encoded: {exc}") from None


def _resource_of(value: bytes) -> str | None:
    """The resource id of a documents-table record, without decoding all of it (ids are
    UUIDs; records are written by orjson, so the key is spelled exactly so). The last
    occurrence: "resource" comes after "content" in every record (tables/documents.py),
    and the content may hold the same text."""
    at = value.rfind(b'"resource":"')
    if at < 0:
        return None
    start = at + len(b'"resource":"')
    return value[start:value.index(b'"', start)].decode()
