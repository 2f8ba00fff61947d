"""Issue: replay (DESIGN.md invariant 5, SPEC §10). A new Flare app id on the same topics
(same FLARE_TOPIC_PREFIX, new FLARE_APP_ID) starts with empty tables and rebuilds them by
reading the topics from the beginning: the documents it answers are the same, and the
subscribers are not sent again what they already have. And the same app id reading the
documents topic again (a crash before its commit) offers nothing old."""

from __future__ import annotations

import asyncio
from collections import Counter

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from app.config import Settings
from streams.changes import changes_group
from tests.flare_process import poll, unique_name
from tests.kafka_offsets import committed, end_offsets
from tests.receiver import Receiver

pytestmark = pytest.mark.integration

DOCUMENTS = 20
REVISIONS = 3


def latest(receiver: Receiver, path: str) -> int:
    versions = [r.json()["document"]["version"] for r in receiver.received(path)]
    return max(versions, default=0)


def test_a_new_app_id_rebuilds_the_tables_and_resends_nothing(flare_factory):
    receivers = [Receiver().up() for _ in range(2)]
    first = flare_factory(app_id=unique_name("a")).start()
    host = f"{unique_name('replay')}.test"
    resource = first.post("/resources", json={"endpoint": f"http://{host}/items/{{id}}",
                                              "change": {"field": "version"}})
    assert resource.status_code == 201, resource.text
    for n, receiver in enumerate(receivers):
        answer = first.post(f"/resources/{resource.json()['id']}/subscriptions", json={
            "endpoint": {"url": f"{receiver.url}/s{n}/{{id}}", "method": "post"},
            "delivery": {"success": [200], "discard": [410]},
        })
        assert answer.status_code == 201, answer.text
    urls = [f"http://{host}/items/{i}" for i in range(DOCUMENTS)]
    for revision in range(1, REVISIONS + 1):
        for i, url in enumerate(urls):
            answer = first.put(f"/documents/{url}", json={"version": revision, "i": i})
            assert answer.status_code == 202, answer.text
    deleted = urls[-1]
    assert first.delete(f"/documents/{deleted}").status_code == 202

    def all_delivered() -> bool:
        return all(latest(r, f"/s{n}/{i}") == REVISIONS for n, r in enumerate(receivers)
                   for i in range(DOCUMENTS)) and all(
            any(q.json()["action"] == "delete" for q in r.received(f"/s{n}/{DOCUMENTS - 1}"))
            for n, r in enumerate(receivers))

    poll(all_delivered, timeout=60, interval=0.2, message="every change delivered")
    before = {url: first.get(f"/documents/{url}") for url in urls}
    assert all(a.status_code == 200 for url, a in before.items() if url != deleted)
    assert before[deleted].status_code == 404
    sent_before = [len(r.received()) for r in receivers]
    first.stop()

    # A new app id: fresh tables (own changelogs, own consumer group), same topics.
    second = flare_factory(prefix=first.prefix, app_id=unique_name("b")).start()

    def same_documents() -> bool:
        for url, answer in before.items():
            again = second.get(f"/documents/{url}")
            if again.status_code != answer.status_code or again.json() != answer.json():
                return False
        return True

    poll(same_documents, timeout=60, interval=0.5, message="documents rebuilt by replay")

    # One more revision of every live document: per key, the replayed events come before
    # it in the same partition, so once it has arrived the replay of that key is over.
    for i, url in enumerate(urls[:-1]):
        assert second.put(f"/documents/{url}", json={"version": REVISIONS + 1, "i": i}).status_code == 202
    poll(lambda: all(latest(r, f"/s{n}/{i}") == REVISIONS + 1 for n, r in enumerate(receivers)
                     for i in range(DOCUMENTS - 1)),
         timeout=60, interval=0.2, message="the new revisions delivered")

    after = [r.received()[count:] for r, count in zip(receivers, sent_before)]
    resent = [(q.path, q.json()["action"], q.json()["document"]["version"])
              for requests in after for q in requests
              if q.json()["document"]["version"] <= REVISIONS]
    actions = Counter(q.json()["action"] for requests in after for q in requests)
    print(f"\nafter the new app id: {sum(map(len, after))} requests, {len(resent)} re-sent "
          f"({resent[:5]}), actions {dict(actions)}")
    # Invariant 5: nothing the subscribers already had is sent again ...
    assert resent == []
    # ... because the records were rebuilt too: the new revision is an update, not a create.
    assert actions == {"update": 2 * (DOCUMENTS - 1)}
    for receiver in receivers:
        receiver.down()


async def _rewind(bootstrap: str, group: str, topic: str) -> None:
    """Commit offset 0 on every partition of ``topic`` for ``group`` (its members stopped):
    what the group's committed offsets would be had the process died before committing."""
    tps = [TopicPartition(topic, p) for p in await end_offsets(bootstrap, topic)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.commit({tp: 0 for tp in tps})
    finally:
        await consumer.stop()


async def _caught_up(bootstrap: str, group: str, topic: str) -> bool:
    """Whether ``group`` has committed ``topic`` up to its end."""
    ends = await end_offsets(bootstrap, topic)
    done = await committed(bootstrap, group, topic)
    return all(done.get(p, -1) >= end for p, end in ends.items() if end)


async def _read(bootstrap: str, topic: str, starts: dict[int, int]) -> list[dict]:
    """Every record of ``topic`` from ``starts`` (partition → offset) to its current end."""
    ends = await end_offsets(bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in starts])
        for p, offset in starts.items():
            consumer.seek(TopicPartition(topic, p), offset)
        found = []
        remaining = {p for p in starts if ends[p] > starts[p]}
        while remaining:
            for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                found += [orjson.loads(r.value) for r in records if r.offset < ends[tp.partition]]
                if records[-1].offset + 1 >= ends[tp.partition]:
                    remaining.discard(tp.partition)
        return found
    finally:
        await consumer.stop()


def test_changes_read_again_after_a_crash_offer_nothing_old(flare_factory, kafka_bootstrap):
    """Invariant 3 when the changes stage reads the documents topic again (a crash before its
    commit): a put read again from before the delete that followed it must not be offered
    again, or its subscriber would be told the deleted document exists; the delete that
    wrote the table's record is offered again (its offers might not have reached Kafka)."""
    receiver = Receiver().up()
    flare = flare_factory().start()
    host = f"{unique_name('again')}.test"
    resource = flare.post("/resources", json={"endpoint": f"http://{host}/items/{{id}}",
                                              "change": {"field": "version"}})
    assert resource.status_code == 201, resource.text
    answer = flare.post(f"/resources/{resource.json()['id']}/subscriptions", json={
        "endpoint": {"url": f"{receiver.url}/n/{{id}}", "method": "post"},
        "delivery": {"success": [200], "discard": [410]}})
    assert answer.status_code == 201, answer.text
    url = f"http://{host}/items/1"

    def actions() -> list[tuple[str, int]]:
        return [(r.json()["action"], r.json()["document"]["version"]) for r in receiver.received()]

    assert flare.put(f"/documents/{url}", json={"version": 1}).status_code == 202
    poll(lambda: actions() == [("create", 1)], timeout=30, message="create delivered")
    assert flare.delete(f"/documents/{url}").status_code == 202
    poll(lambda: actions() == [("create", 1), ("delete", 1)], timeout=30,
         message="delete delivered")
    flare.stop()

    # As if the process had died before committing anything: the whole documents topic is
    # read again by the same app id, against a table that already holds every change.
    group = changes_group(Settings(app_id=flare.env["FLARE_APP_ID"]))
    documents, deliveries = f"{flare.prefix}.documents", f"{flare.prefix}.deliveries"
    before = asyncio.run(end_offsets(kafka_bootstrap, deliveries))
    asyncio.run(_rewind(kafka_bootstrap, group, documents))
    flare.start()
    poll(lambda: asyncio.run(_caught_up(kafka_bootstrap, group, documents)),
         timeout=30, interval=0.3, message="the documents topic read again to its end")
    offers = [e for e in asyncio.run(_read(kafka_bootstrap, deliveries, before))
              if e["type"] == "offer"]
    assert [(o["kind"], o["revision"]) for o in offers] == [("delete", 1)]

    # And the subscriber, who holds no record since the delete, gets the next put as a create.
    assert flare.put(f"/documents/{url}", json={"version": 2}).status_code == 202
    poll(lambda: len(actions()) >= 3, timeout=30, message="the new put delivered")
    assert flare.get(f"/documents/{url}").json()["revision"] == 2
    assert actions() == [("create", 1), ("delete", 1), ("create", 2)]
    receiver.down()
