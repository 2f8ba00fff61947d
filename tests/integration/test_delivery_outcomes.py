"""Issue: notifications, outcomes and order (SPEC §9.3-§9.6, DESIGN invariants 2-4).

Retries, discards, coalescing, isolation between subscribers and documents, identity and
signatures, dead deliveries and redrive, through a real `flare start`. Tests that wait on
retries give the subscription a short ``delivery.retry``; none sleeps: each polls with a
deadline, and "no more requests" is proved by a later marker that must arrive first.
"""

from __future__ import annotations

import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.flare_process import poll
from tests.integration.delivery_support import (FAST, always, delete, deliveries,
                                                new_resource, new_secret, put, seen, subscribe, wait_count)
from tests.receiver import Receiver

pytestmark = pytest.mark.integration

#: How soon a healthy delivery must arrive while another one fails (invariant 4).
PROMPT = 5.0


@pytest.fixture
def receiver():
    r = Receiver().up()
    yield r
    r.down()


# -- §9.3 outcome ----------------------------------------------------------------------------

def test_retried_until_success_with_the_same_webhook_id(flare, receiver):
    """Default policy (first wait 1 s, doubling): 503, 503, 200 → three attempts, then done."""
    rid, base = new_resource(flare)
    subscribe(flare, rid, f"{receiver.url}/s/{{id}}")
    receiver.answer("/s/1", 503, 503)
    doc = f"{base}/1"
    started = int(time.time())
    put(flare, doc, 1)
    wait_count(receiver, "/s/1", 3)
    put(flare, doc, 2)  # marker: nothing more for revision 1 before it
    got = wait_count(receiver, "/s/1", 4)
    assert seen(got) == [("create", 1)] * 3 + [("update", 2)]
    ids = [r.headers["webhook-id"] for r in got]
    assert ids[0] == ids[1] == ids[2] != ids[3]
    stamps = [int(r.headers["webhook-timestamp"]) for r in got]
    assert stamps == sorted(stamps)
    assert started - 1 <= stamps[0] and stamps[-1] <= int(time.time()) + 1
    assert len(receiver.received()) == 4


def test_discard_stops_retries_and_records_the_revision(flare, receiver):
    rid, base = new_resource(flare)
    subscribe(flare, rid, f"{receiver.url}/s/{{id}}", discard=(410,))
    receiver.answer("/s/1", 410)
    doc = f"{base}/1"
    put(flare, doc, 2)
    wait_count(receiver, "/s/1", 1)
    put(flare, doc, 1)  # older than the discarded revision: nothing
    put(flare, doc, 2)  # equal: nothing
    put(flare, doc, 3)  # newer: update (the discarded create was recorded)
    got = wait_count(receiver, "/s/1", 2)
    assert seen(got) == [("create", 2), ("update", 3)]
    assert len(receiver.received()) == 2


def test_transport_error_is_retried_until_the_receiver_comes_back(flare):
    receiver = Receiver()  # not listening: connection refused
    try:
        rid, base = new_resource(flare)
        sub = subscribe(flare, rid, f"{receiver.url}/s/{{id}}", retry=FAST)
        doc = f"{base}/1"
        put(flare, doc, 1)
        pending = poll(lambda: [d for d in deliveries(flare, rid, sub["id"], "pending")
                                if d["attempt"] >= 3],
                       timeout=20, message="three failed attempts")
        assert pending == [{"document": doc, "state": "pending", "action": "put", "revision": 1,
                            "attempt": pending[0]["attempt"], "lastStatus": None,
                            "nextAttemptAt": pending[0]["nextAttemptAt"]}]
        receiver.up()
        wait_count(receiver, "/s/1", 1)
        put(flare, doc, 2)
        got = wait_count(receiver, "/s/1", 2)
        assert seen(got) == [("create", 1), ("update", 2)]
        poll(lambda: deliveries(flare, rid, sub["id"]) == [], timeout=10,
             message="no delivery left")
    finally:
        receiver.down()


# -- §9.4 order and coalescing -----------------------------------------------------------------

def test_newer_revisions_replace_a_failing_one(flare):
    receiver = Receiver()  # down while revisions 1..5 arrive
    try:
        rid, base = new_resource(flare)
        sub = subscribe(flare, rid, f"{receiver.url}/s/{{id}}", retry=FAST)
        doc = f"{base}/1"
        for version in range(1, 6):
            put(flare, doc, version)
        pending = poll(lambda: [d for d in deliveries(flare, rid, sub["id"])
                                if d["revision"] == 5],
                       timeout=20, message="revision 5 pending")
        # The backlog is one delivery per document, however many changes arrived.
        assert [(d["document"], d["revision"]) for d in deliveries(flare, rid, sub["id"])] \
            == [(doc, 5)]
        assert pending[0]["state"] == "pending"
        receiver.up()
        wait_count(receiver, "/s/1", 1)
        put(flare, doc, 6)
        got = wait_count(receiver, "/s/1", 2)
        # create: nothing was recorded while every attempt failed (invariant 2)
        assert seen(got) == [("create", 5), ("update", 6)]
        assert len(receiver.received()) == 2
    finally:
        receiver.down()


def test_one_request_in_flight_per_document_and_subscription(flare):
    server = Receiver().up()
    try:
        server.hang("/s/1")  # the first request gets no answer until released
        rid, base = new_resource(flare)
        sub = subscribe(flare, rid, f"{server.url}/s/{{id}}")
        doc = f"{base}/1"
        put(flare, doc, 1)
        wait_count(server, "/s/1", 1)
        put(flare, doc, 2)
        put(flare, doc, 3)
        poll(lambda: [d for d in deliveries(flare, rid, sub["id"]) if d["revision"] == 3],
             timeout=10, message="revision 3 waiting behind the request in flight")
        assert len(server.received("/s/1")) == 1  # no second request while one is in flight
        server.release()
        got = wait_count(server, "/s/1", 2)
        assert seen(got) == [("create", 1), ("update", 3)]
        put(flare, doc, 4)
        got = wait_count(server, "/s/1", 3)
        assert seen(got) == [("create", 1), ("update", 3), ("update", 4)]
    finally:
        server.down()


def test_failing_subscriber_does_not_slow_another(flare, receiver):
    rid, base = new_resource(flare)
    subscribe(flare, rid, f"{receiver.url}/bad/{{id}}", retry=FAST)
    subscribe(flare, rid, f"{receiver.url}/good/{{id}}")
    always(receiver, "/bad/1", 503)
    doc = f"{base}/1"
    put(flare, doc, 1)
    wait_count(receiver, "/bad/1", 3)
    wait_count(receiver, "/good/1", 1)
    put(flare, doc, 2)
    good = wait_count(receiver, "/good/1", 2, timeout=PROMPT)
    assert seen(good) == [("create", 1), ("update", 2)]
    failing = len(receiver.received("/bad/1"))
    wait_count(receiver, "/bad/1", failing + 2)  # still failing and retrying meanwhile
    assert {a for a, _ in seen(receiver.received("/bad/1"))} == {"create"}


def test_failing_document_does_not_slow_another(flare, receiver):
    rid, base = new_resource(flare)
    subscribe(flare, rid, f"{receiver.url}/s/{{id}}", retry=FAST)
    always(receiver, "/s/bad", 503)
    put(flare, f"{base}/bad", 1)
    wait_count(receiver, "/s/bad", 3)
    put(flare, f"{base}/good", 1)
    good = wait_count(receiver, "/s/good", 1, timeout=PROMPT)
    assert seen(good) == [("create", 1)]
    failing = len(receiver.received("/s/bad"))
    wait_count(receiver, "/s/bad", failing + 2)


def test_document_in_flight_does_not_hold_up_another(flare):
    """A request that gets no answer (up to the 10 s attempt timeout) blocks only its key."""
    server = Receiver().up()
    try:
        server.hang("/s/slow")
        rid, base = new_resource(flare)
        subscribe(flare, rid, f"{server.url}/s/{{id}}")
        subscribe(flare, rid, f"{server.url}/other/{{id}}")
        put(flare, f"{base}/slow", 1)
        wait_count(server, "/s/slow", 1)
        put(flare, f"{base}/fast", 1)
        fast = wait_count(server, "/s/fast", 1, timeout=PROMPT)
        wait_count(server, "/other/slow", 1, timeout=PROMPT)  # another subscriber, same document
        assert seen(fast) == [("create", 1)]
        assert "/s/slow" not in server.answered  # still in flight meanwhile
    finally:
        server.down()


# -- §9.5, §9.6 identity and signatures ------------------------------------------------------

def test_signed_requests_verify_and_the_secret_is_never_returned(flare, receiver):
    rid, base = new_resource(flare)
    secret = new_secret()
    sub = subscribe(flare, rid, f"{receiver.url}/s/{{id}}", secret=secret)
    assert "secret" not in sub
    shown = flare.get(f"/resources/{rid}/subscriptions/{sub['id']}")
    listed = flare.get(f"/resources/{rid}/subscriptions")
    assert shown.status_code == 200 and listed.status_code == 200
    assert "secret" not in shown.json()
    assert [s["id"] for s in listed.json()["subscriptions"]] == [sub["id"]]
    assert secret[6:] not in shown.text and secret[6:] not in listed.text

    doc = f"{base}/1"
    put(flare, doc, 1)
    wait_count(receiver, "/s/1", 1)
    put(flare, doc, 2)
    wait_count(receiver, "/s/1", 2)
    delete(flare, doc)
    got = wait_count(receiver, "/s/1", 3)
    assert seen(got) == [("create", 1), ("update", 2), ("delete", 2)]
    for request in got:
        assert request.headers["webhook-signature"].startswith("v1,")
        assert Webhook(secret).verify(request.body, request.headers) == request.json()
    assert len({r.headers["webhook-id"] for r in got}) == 3
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(got[0].body, got[0].headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(got[0].body.replace(b'"create"', b'"update"'), got[0].headers)


# -- §9.6 dead deliveries and redrive -----------------------------------------------------------

def test_gives_up_into_dead_then_redrive_sends_it(flare, receiver):
    rid, base = new_resource(flare)
    sub = subscribe(flare, rid, f"{receiver.url}/s/{{id}}",
                    retry={"initial": 0.2, "max": 0.5, "giveUpAfter": 1})
    sid = sub["id"]
    always(receiver, "/s/1", 503)
    doc = f"{base}/1"
    put(flare, doc, 1)
    dead = poll(lambda: deliveries(flare, rid, sid, "dead"), timeout=20, message="dead delivery")
    attempts = len(receiver.received("/s/1"))
    assert dead == [{"document": doc, "state": "dead", "action": "put", "revision": 1,
                     "attempt": attempts, "lastStatus": 503,
                     "nextAttemptAt": dead[0]["nextAttemptAt"]}]
    assert attempts >= 2
    assert deliveries(flare, rid, sid, "pending") == []
    assert deliveries(flare, rid, sid) == dead
    # A dead delivery is not retried: another document of the subscription goes through
    # meanwhile, and no attempt of the dead one is made.
    put(flare, f"{base}/2", 1)
    wait_count(receiver, "/s/2", 1)
    assert len(receiver.received("/s/1")) == attempts

    receiver.stop_scripting("/s/1")
    answer = flare.post(f"/resources/{rid}/subscriptions/{sid}/deliveries/redrive")
    assert (answer.status_code, answer.content) == (202, b"")
    got = wait_count(receiver, "/s/1", attempts + 1)
    assert seen(got) == [("create", 1)] * (attempts + 1)
    assert {r.headers["webhook-id"] for r in got} == {got[0].headers["webhook-id"]}
    poll(lambda: deliveries(flare, rid, sid) == [], timeout=10, message="dead list empty")
    assert deliveries(flare, rid, sid, "dead") == []
    put(flare, doc, 2)  # the redriven create was recorded
    assert seen(wait_count(receiver, "/s/1", attempts + 2)[-1:]) == [("update", 2)]


def test_deleting_a_subscription_stops_its_pending_deliveries(flare, receiver):
    rid, base = new_resource(flare)
    gone = subscribe(flare, rid, f"{receiver.url}/gone/{{id}}", retry=FAST)
    subscribe(flare, rid, f"{receiver.url}/keep/{{id}}")
    always(receiver, "/gone/1", 503)
    doc = f"{base}/1"
    put(flare, doc, 1)
    wait_count(receiver, "/gone/1", 3)
    wait_count(receiver, "/keep/1", 1)
    answer = flare.delete(f"/resources/{rid}/subscriptions/{gone['id']}")
    assert answer.status_code == 204
    before = len(receiver.received("/gone/1"))
    put(flare, doc, 2)  # marker through the other subscription
    wait_count(receiver, "/keep/1", 2)
    settled = len(receiver.received("/gone/1"))
    assert settled <= before + 1  # at most the request that was in flight
    put(flare, doc, 3)
    wait_count(receiver, "/keep/1", 3)
    put(flare, doc, 4)
    wait_count(receiver, "/keep/1", 4)
    assert len(receiver.received("/gone/1")) == settled
    assert {a for a, _ in seen(receiver.received("/gone/1"))} == {"create"}
    answer = flare.get(f"/resources/{rid}/subscriptions/{gone['id']}/deliveries")
    assert answer.status_code == 404


def test_deleting_a_subscription_drops_its_dead_records(flare_factory, receiver):
    """§7: "Its delivery records and pending deliveries are dropped" — at once, not when
    a next event of the key comes (a dead delivery gets none: it stayed for ever)."""
    flare = flare_factory().start()
    rid, base = new_resource(flare)
    sid = subscribe(flare, rid, f"{receiver.url}/drop/{{id}}",
                    retry={"initial": 0.2, "max": 0.5, "giveUpAfter": 1})["id"]
    for n in range(3):
        always(receiver, f"/drop/{n}", 503)
        put(flare, f"{base}/{n}", 1)
    poll(lambda: len(deliveries(flare, rid, sid, "dead")) == 3, timeout=30, message="3 dead")

    def deliveries_records() -> float:
        text = flare.get("/metrics").text
        line = next(line for line in text.splitlines()
                    if line.startswith('flare_table_records{table="deliveries"}'))
        return float(line.rsplit(" ", 1)[1])

    assert deliveries_records() == 3
    assert flare.delete(f"/resources/{rid}/subscriptions/{sid}").status_code == 204
    poll(lambda: deliveries_records() == 0, timeout=20, message="the records dropped")
