"""Tables on disk (issue 12) with a real `flare start`: a restart with its stores kept reads
only the changelog's tail, and with its stores wiped it rebuilds the same tables from the
changelog and sends nothing again."""

from __future__ import annotations

import shutil

import pytest

from tests.flare_process import poll
from tests.integration.delivery_support import new_resource, put, subscribe
from tests.integration.test_operations import scrape, value
from tests.kafka_io import read_all
from tests.receiver import Receiver

pytestmark = pytest.mark.integration

DOCUMENTS = 200


def changelog_read(flare) -> dict[str, float]:
    samples = scrape(flare)
    return {stage: value(samples, "flare_stage_changelog_read_total", stage=stage)
            for stage in ("changes", "dispatcher")}


def documents(flare, base: str) -> dict[int, int]:
    """Document number → the revision the API answers."""
    found = {}
    for n in range(DOCUMENTS):
        answer = flare.get(f"/documents/{base}/{n}")
        assert answer.status_code == 200, answer.text
        found[n] = answer.json()["revision"]
    return found


def changelog_records(flare, table: str) -> int:
    topic = f"{flare.env['FLARE_APP_ID']}-{table}-changelog"
    return len(read_all(flare.env["FLARE_KAFKA_BOOTSTRAP"], topic, count=10**6, timeout=5))


def test_restarts_read_the_tail_and_a_wiped_store_is_rebuilt_without_sending_again(flare_factory):
    receiver = Receiver().up()
    try:
        flare = flare_factory(env={"FLARE_TABLE_STORE": "rocksdb"}).start()
        rid, base = new_resource(flare)
        subscribe(flare, rid, receiver.url + "/s/{id}")
        for version in (1, 2):
            for n in range(DOCUMENTS):
                put(flare, f"{base}/{n}", version)
        poll(lambda: len(receiver.received()) >= 2 * DOCUMENTS, timeout=60,
             message="every change delivered")
        before = documents(flare, base)
        assert set(before.values()) == {2}
        sent = len(receiver.received())

        # A clean stop: the stores hold everything; nothing of the changelogs is read.
        flare.stop()
        flare.start()
        assert changelog_read(flare) == {"changes": 0, "dispatcher": 0}
        assert documents(flare, base) == before

        # A SIGKILL right after more changes: the stores hold the last commit, and the
        # restart reads at most what was written after it.
        for n in range(10):
            put(flare, f"{base}/{n}", 3)
        poll(lambda: len(receiver.received()) >= sent + 10, timeout=30, message="10 more delivered")
        flare.kill()
        flare.start()
        read = changelog_read(flare)
        # (a document's record once; a delivery's record for its offer and its outcome)
        assert read["changes"] <= 10 and read["dispatcher"] <= 20, read
        after_kill = documents(flare, base)
        assert after_kill == {**before, **{n: 3 for n in range(10)}}
        poll(lambda: sum(1 for r in receiver.received() if r.json()["document"]["version"] == 3)
             >= 10, timeout=30, message="the 10 changes delivered")

        # Stores wiped: everything is read from the changelogs, the tables are the same,
        # and nothing is sent again.
        flare.stop()
        sent = len(receiver.received())
        stores = flare.data_dir / flare.env["FLARE_APP_ID"]
        assert stores.is_dir(), "the stores live under data_dir/<app id>"
        shutil.rmtree(stores)
        flare.start()
        read = changelog_read(flare)
        assert read == {"changes": changelog_records(flare, "documents"),
                        "dispatcher": changelog_records(flare, "deliveries")}, read
        assert documents(flare, base) == after_kill
        # One more revision of every document: per key it comes after anything older the
        # dispatcher could still send, and as an update only if the rebuilt deliveries
        # table knows what the subscriber has.
        for n in range(DOCUMENTS):
            put(flare, f"{base}/{n}", 4)
        poll(lambda: len(receiver.received()) >= sent + DOCUMENTS, timeout=60,
             message="the new revisions delivered")
        new = [(r.path, r.json()["action"], r.json()["document"]["version"])
               for r in receiver.received()[sent:]]
        assert sorted(new) == sorted((f"/s/{n}", "update", 4) for n in range(DOCUMENTS))
    finally:
        receiver.down()
