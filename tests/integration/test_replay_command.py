"""`flare replay` (SPEC §10, DESIGN.md invariant 5) on a live system: the tables rebuilt from
the topics into a new app id, and a subscriber whose deliveries were parked dead is sent
what it is missing, while one that was up gets nothing again. `--dry-run` only reports."""

from __future__ import annotations

import asyncio
import re
import subprocess

import orjson
import pytest

from tests.flare_process import FLARE, poll, unique_name
from tests.integration.delivery_support import (delete, deliveries, new_resource, put,
                                                subscribe, wait_count)
from tests.kafka_io import end_offsets, read_all
from tests.kafka_offsets import admin_client, committed
from tests.receiver import Receiver

pytestmark = pytest.mark.integration

DOCUMENTS = (1, 2, 3, 4)
REVISIONS = 3
#: Parked dead after a second of failures (SPEC §9.6).
GIVE_UP = {"initial": 0.1, "max": 0.2, "giveUpAfter": 1}


def _replay(flare, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([FLARE, "replay", *args], env=flare.env, capture_output=True,
                          text=True, timeout=300)
    return done


def _history(receiver: Receiver, prefix: str, since: int = 0) -> list[tuple[str, str, int]]:
    """(path, action, version) of what ``receiver`` got after its first ``since`` requests."""
    return [(r.path, r.json()["action"], r.json()["document"]["version"])
            for r in receiver.received()[since:] if r.path.startswith(prefix)]


def _topics(bootstrap: str) -> set[str]:
    async def names() -> set[str]:
        async with admin_client(bootstrap) as admin:
            return set(await admin.list_topics())
    return asyncio.run(names())


def test_replay_into_a_new_app_id_sends_only_what_is_missing(flare_factory):
    up, down = Receiver().up(), Receiver().up()
    try:
        _scenario(flare_factory, up, down)
    finally:
        up.down()
        down.down()


def _scenario(flare_factory, up: Receiver, down: Receiver) -> None:
    old = flare_factory(app_id=unique_name("old")).start()
    bootstrap = old.env["FLARE_KAFKA_BOOTSTRAP"]
    rid, base = new_resource(old)
    subscribe(old, rid, up.url + "/a/{id}")
    sid_down = subscribe(old, rid, down.url + "/b/{id}", retry=GIVE_UP)["id"]

    # Document 0 reaches both subscribers, then the second one fails for good.
    put(old, f"{base}/0", 1)
    wait_count(up, "/a/0", 1)
    wait_count(down, "/b/0", 1)
    down.default = 500
    for version in range(1, REVISIONS + 1):
        for n in DOCUMENTS:
            put(old, f"{base}/{n}", version)
    delete(old, f"{base}/0")
    poll(lambda: all(any(h[0] == f"/a/{n}" and h[2] == REVISIONS for h in _history(up, "/a"))
                     for n in DOCUMENTS)
         and any(h == ("/a/0", "delete", 1) for h in _history(up, "/a")),
         timeout=30, message="the receiver that is up has every change")

    def all_dead() -> bool:
        dead = deliveries(old, rid, sid_down, "dead")
        return len(dead) == len(DOCUMENTS) + 1 and all(
            d["action"] == "delete" or d["revision"] == REVISIONS for d in dead)

    poll(all_dead, timeout=60, interval=0.3, message="the failing receiver's deliveries dead")
    down.default = 200  # fixed: only a replay (or a redrive) sends it what it missed
    up_before, down_before = len(up.received()), len(down.received())
    new_app = unique_name("new")

    # The app id of a running process is refused.
    busy = _replay(old, "--app-id", old.env["FLARE_APP_ID"], "--dry-run")
    assert busy.returncode == 2 and "is running" in busy.stderr, busy.stderr

    # --dry-run: reports, writes nothing, sends nothing.
    deliveries_topic = f"{old.prefix}.deliveries"
    ends_before = end_offsets(bootstrap, deliveries_topic)
    dry = _replay(old, "--app-id", new_app, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    print(f"\n--- flare replay --dry-run ---\n{dry.stderr}{dry.stdout}")
    said = " ".join(dry.stdout.split())
    assert re.search(r"dry run: 5 missing documents for 1 subscription\(s\) would be offered", said), said
    assert f"create {base}/1 (revision {REVISIONS})" in said and f"delete {base}/0" in said
    assert end_offsets(bootstrap, deliveries_topic) == ends_before
    assert not {t for t in _topics(bootstrap) if t.startswith(new_app)}
    assert asyncio.run(committed(bootstrap, f"{new_app}.changes", f"{old.prefix}.documents")) == {}

    # The replay: rebuilt tables for the new app id, offers for what is missing.
    done = _replay(old, "--app-id", new_app, "--json")
    assert done.returncode == 0, done.stderr
    summary = orjson.loads(done.stdout)
    assert summary["missing"] == 5 and summary["offers"] == 5, summary
    assert summary["subscriptions"][sid_down]["create"] == len(DOCUMENTS)
    assert summary["subscriptions"][sid_down]["delete"] == 1
    assert summary["documents"] == {"live": len(DOCUMENTS), "deleted": 1}
    assert f"{old.prefix}.documents" in done.stderr  # the progress display

    want_down = {(f"/b/{n}", "create", REVISIONS) for n in DOCUMENTS} | {("/b/0", "delete", 1)}
    poll(lambda: want_down <= set(_history(down, "/b", down_before)), timeout=30,
         message="the formerly failing receiver got what it missed")
    poll(lambda: deliveries(old, rid, sid_down) == [], timeout=30,
         message="nothing owed to it any more")
    assert sorted(_history(down, "/b", down_before)) == sorted(want_down)
    assert len(up.received()) == up_before  # the receiver that was up: nothing new

    # The new app id goes on from the replay's tables: nothing old is sent.
    old.stop()
    new = flare_factory(prefix=old.prefix, app_id=new_app).start()
    assert new.get(f"/documents/{base}/0").status_code == 404
    for n in DOCUMENTS:
        assert new.get(f"/documents/{base}/{n}").json()["revision"] == REVISIONS
    up_before, down_before = len(up.received()), len(down.received())
    # One more revision of every document: per key it comes after anything older in the
    # same partition, so once it has arrived, nothing older can still come.
    for n in (0, *DOCUMENTS):
        put(new, f"{base}/{n}", 10)
    for x, receiver, before in (("a", up, up_before), ("b", down, down_before)):
        want = {(f"/{x}/0", "create", 10)} | {(f"/{x}/{n}", "update", 10) for n in DOCUMENTS}
        poll(lambda r=receiver, w=want, b=before, x=x: w <= set(_history(r, f"/{x}", b)),
             timeout=60, message=f"the new revisions at /{x}")
        assert sorted(_history(receiver, f"/{x}", before)) == sorted(want)


def test_replay_into_the_same_app_id_while_it_is_stopped(flare_factory):
    receiver = Receiver().up()
    try:
        flare = flare_factory(app_id=unique_name("same")).start()
        bootstrap = flare.env["FLARE_KAFKA_BOOTSTRAP"]
        rid, base = new_resource(flare)
        sid = subscribe(flare, rid, receiver.url + "/s/{id}")["id"]
        gone = subscribe(flare, rid, receiver.url + "/gone/{id}")["id"]
        for version in (1, 2):
            for n in (1, 2, 3):
                put(flare, f"{base}/{n}", version)
        delete(flare, f"{base}/3")
        want = {(f"/s/{n}", "update", 2) for n in (1, 2, 3)} | {("/s/3", "delete", 2)}
        poll(lambda: want <= set(_history(receiver, "/s")), timeout=30,
             message="every change delivered")
        poll(lambda: deliveries(flare, rid, sid) == [] and deliveries(flare, rid, gone) == [],
             timeout=30, message="nothing owed")
        # A deleted subscription's records stay in the changelog until an event of theirs
        # comes; the replay drops them (tombstones).
        assert flare.delete(f"/resources/{rid}/subscriptions/{gone}").status_code == 204
        flare.stop()

        done = _replay(flare, "--json")  # the configured app id, stopped
        assert done.returncode == 0, done.stderr
        summary = orjson.loads(done.stdout)
        assert summary["missing"] == 0 and summary["offers"] == 0, summary
        changelog = read_all(bootstrap, f"{flare.env['FLARE_APP_ID']}-deliveries-changelog",
                             count=10**6, timeout=5)
        last = {r.key: r.value for r in changelog}
        dropped = [k for k in last if k.startswith(gone.encode())]
        assert dropped and all(last[k] is None for k in dropped)

        before = len(receiver.received())
        flare.start()
        assert flare.get(f"/documents/{base}/3").status_code == 404
        for n in (1, 2):
            assert flare.get(f"/documents/{base}/{n}").json()["revision"] == 2
        for n in (1, 2, 3):
            put(flare, f"{base}/{n}", 10)
        want = {("/s/1", "update", 10), ("/s/2", "update", 10), ("/s/3", "create", 10)}
        poll(lambda: want <= set(_history(receiver, "/s", before)), timeout=60,
             message="the new revisions")
        assert sorted(_history(receiver, "/", before)) == sorted(want)
    finally:
        receiver.down()
