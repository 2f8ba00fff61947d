"""Hostile input and hostile receivers through a real `flare start` (SPEC §11a, issue 10).

Receivers are real HTTP servers on 127.0.0.1 (tests/receiver.py, tests/hostile_receivers.py).
The address check at connect time is shown by a subscription created while private targets
were allowed, then sent by a process where they are not: what the name was when the
subscription was created does not matter, the address connected to does.
"""

from __future__ import annotations

import time

import pytest

from tests.flare_process import poll, unique_name
from tests.hostile_receivers import HugeBody, SlowLoris
from tests.integration.delivery_support import (FAST, always, deliveries, new_resource, put,
                                                subscribe, wait_count)
from tests.receiver import Receiver

pytestmark = pytest.mark.integration

DELIVERY = {"success": [200], "discard": [410]}


@pytest.fixture
def receiver():
    r = Receiver().up()
    yield r
    r.down()


def _post_subscription(flare, rid: str, endpoint: dict, **extra):
    return flare.post(f"/resources/{rid}/subscriptions",
                      json={"endpoint": endpoint, "delivery": DELIVERY, **extra})


# -- create-time rules: a clear 400 with SPEC's error body --------------------------------

@pytest.mark.parametrize(("endpoint", "extra", "detail"), [
    ({"url": "http://1.1.1.1:{id}/x", "method": "post"}, {},
     "invalid body content: invalid endpoint: endpoint.url may have wildcards only in its path "
     "or query, not in its scheme, user info, host, port or fragment"),
    ({"url": "http://client.test/{id}", "method": "post", "headers": {"Host": ["evil"]}}, {},
     "invalid body content: invalid endpoint: endpoint.headers may not set 'Host' (Flare sets "
     "it, or it changes the request's framing)"),
    ({"url": "http://client.test/{id}", "method": "post",
      "headers": {"Transfer-Encoding": ["chunked"]}}, {},
     "invalid body content: invalid endpoint: endpoint.headers may not set 'Transfer-Encoding' "
     "(Flare sets it, or it changes the request's framing)"),
    ({"url": "http://client.test/a%0d%0aX:%20y/{id}", "method": "post"}, {},
     "invalid body content: invalid endpoint: endpoint.url has a control character"),
    ({"url": "http://client.test/{id}", "method": "post"},
     {"delivery": {**DELIVERY, "retry": {"initial": 1e-9}}},
     "invalid body content: invalid delivery.retry: 'initial' should be at least 0.1 seconds"),
    ({"url": "http://client.test/" + "a" * 5000, "method": "post"}, {},
     "invalid body content: invalid endpoint: endpoint.url longer than 4096"),
], ids=["port wildcard", "Host header", "framing header", "control character", "retry floor",
        "long url"])
def test_subscription_rules_are_a_400(flare, endpoint, extra, detail):
    rid, _ = new_resource(flare)
    answer = _post_subscription(flare, rid, endpoint, **extra)
    assert answer.status_code == 400, answer.text
    assert answer.json() == {"error": {"title": "error during body parse", "detail": detail}}


@pytest.mark.parametrize(("path", "status", "title"), [
    ("/resources?offset=99999999999999999999", 400, "invalid pagination"),
    ("/resources?offset=" + "9" * 5000, 400, "invalid pagination"),
    ("/resources?limit=" + "9" * 5000, 400, "invalid pagination"),
    ("/resources/x/subscriptions?offset=-" + "9" * 30, 400, "invalid pagination"),
])
def test_integer_parameters_out_of_range_are_a_400(flare, path, status, title):
    answer = flare.get(path)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["title"] == title


def test_resource_bounds_are_a_400(flare):
    answer = flare.post("/resources", json={"endpoint": "http://api.test/{id}",
                                            "change": {"field": "v", "format": "2" * 200}})
    assert answer.status_code == 400
    assert answer.json() == {"error": {"title": "invalid body content",
                                       "detail": "change.format longer than 128"}}


def test_a_body_at_the_limit_is_stored_and_one_past_it_is_a_413(flare):
    rid, base = new_resource(flare)
    url = f"{base}/{'u' * 2000}"  # a long URL: the record is larger than the body
    limit = 1024 * 1024
    filler = limit - len('{"version":1,"pad":""}')
    answer = flare.put(f"/documents/{url}", content=b'{"version":1,"pad":"' + b"x" * filler + b'"}')
    assert answer.status_code == 202, answer.text
    answer = flare.put(f"/documents/{url}",
                       content=b'{"version":2,"pad":"' + b"x" * (filler + 1) + b'"}')
    assert answer.status_code == 413, answer.text
    got = poll(lambda: (lambda a: a if a.status_code == 200 else None)(flare.get(f"/documents/{url}")),
               timeout=30, message="the large document stored")
    assert got.json()["revision"] == 1


# -- SPEC §11a: '.' and '..' values -------------------------------------------------------

def test_a_dot_dot_value_is_discarded_not_sent(flare, receiver):
    rid, base = new_resource(flare)
    sub = subscribe(flare, rid, f"{receiver.url}/feed/{{id}}")
    put(flare, f"{base}/%2e%2e", 1)  # would make http://127.0.0.1:port/ of the URL
    poll(lambda: "discarded" in flare.log() and sub["id"] in flare.log(), timeout=30,
         message="the '..' delivery discarded")
    put(flare, f"{base}/fine", 1)
    wait_count(receiver, "/feed/fine", 1)
    assert [r.path for r in receiver.received()] == ["/feed/fine"]
    assert deliveries(flare, rid, sub["id"]) == []  # discarded: nothing pending or dead


# -- SPEC §11a: the address is checked when the connection is made ------------------------

def test_private_target_is_refused_at_connect_and_allowed_when_configured(flare_factory, receiver):
    prefix = unique_name("t")
    allowed = flare_factory(prefix=prefix).start()  # FLARE_ALLOW_PRIVATE_TARGETS=true
    rid, base = new_resource(allowed)
    sub = subscribe(allowed, rid, f"{receiver.url}/feed/{{id}}", retry=FAST)
    put(allowed, f"{base}/1", 1)
    wait_count(receiver, "/feed/1", 1)  # allowed: delivered
    allowed.stop()

    strict = flare_factory(prefix=prefix,
                           env={"FLARE_ALLOW_PRIVATE_TARGETS": "false"}).start()
    put(strict, f"{base}/2", 1)

    def retried():
        found = [d for d in deliveries(strict, rid, sub["id"]) if d["document"] == f"{base}/2"]
        return found if found and found[0]["attempt"] >= 3 else None

    (pending,) = poll(retried, timeout=60, message="refused attempts retried")
    assert pending["state"] == "pending" and pending["lastStatus"] is None
    assert receiver.received("/feed/2") == []
    assert "Traceback" not in strict.log()  # a refused connect is an ordinary failure


# -- SPEC §11a: bounded attempts ------------------------------------------------------------

def test_slow_receivers_do_not_hold_up_a_healthy_one(flare_factory, receiver):
    """With 2 senders, a slow-loris receiver and one whose body never ends would hold both
    for ever without a total deadline and a bounded read; with them, the healthy receiver
    gets each change within one delivery_timeout (plus the pipeline's own latency)."""
    timeout = 2.0
    flare = flare_factory(env={"FLARE_DELIVERY_TIMEOUT": str(timeout),
                               "FLARE_DELIVERY_CONCURRENCY": "2"}).start()
    slow, huge = SlowLoris(interval=1.0).start(), HugeBody().start()
    try:
        rid, base = new_resource(flare)
        subscribe(flare, rid, f"{slow.url}/slow/{{id}}", retry=FAST)
        subscribe(flare, rid, f"{huge.url}/huge/{{id}}", retry=FAST)
        subscribe(flare, rid, f"{receiver.url}/ok/{{id}}")
        for n in range(4):
            started = time.monotonic()
            put(flare, f"{base}/{n}", 1)
            wait_count(receiver, f"/ok/{n}", 1, timeout=30)
            assert time.monotonic() - started < timeout + 2.5, f"document {n}"
        assert slow.connections >= 2 and huge.connections >= 1
    finally:
        slow.stop()
        huge.stop()


# -- processes call each other with a credential --------------------------------------------

def test_two_processes_with_tokens_answer_forwarded_reads_and_list_both(flare_factory, receiver):
    name = unique_name("tok")
    env = {"FLARE_API_TOKENS": "internal,client"}
    first = flare_factory(app_id=name, prefix=name, env=env)
    second = flare_factory(app_id=name, prefix=name, env=env)
    for process in (first, second):
        process.client.headers["Authorization"] = "Bearer client"
        process.start()
    poll(lambda: first.readyz().status_code == 200 and second.readyz().status_code == 200,
         timeout=60, message="both ready")
    rid, base = new_resource(first)
    always(receiver, "/never", 500)
    sub = subscribe(first, rid, f"{receiver.url}/never", retry={"initial": 30, "max": 60})
    urls = [f"{base}/{n}" for n in range(16)]
    for url in urls:
        put(first, url, 1)

    def everything_readable() -> bool:
        return all(p.get(f"/documents/{u}").status_code == 200 for p in (first, second)
                   for u in urls)

    poll(everything_readable, timeout=60, message="every document read through both processes")

    def listed_by_both():
        bodies = [p.get(f"/resources/{rid}/subscriptions/{sub['id']}/deliveries").json()
                  for p in (first, second)]
        docs = [sorted(d["document"] for d in b["deliveries"]) for b in bodies]
        return bodies if all(d == sorted(urls) for d in docs) else None

    bodies = poll(listed_by_both, timeout=60, message="both list the deliveries of both")
    assert all("unanswered" not in b for b in bodies)
    # Without a token, still refused.
    assert first.client.get(f"/documents/{urls[0]}", headers={"Authorization": ""}).status_code == 401
