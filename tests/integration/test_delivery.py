"""Issue: notifications, what is sent and how (SPEC §9.1, §9.2) through a real `flare start`.

Every test has a resource on a host of its own and a real HTTP receiver. "Nothing was
sent" is proved without sleeping: a later change of the same document (a marker) goes
through the same key after it, so anything wrongly sent would have arrived before the
marker's request; the test waits for the marker, then asserts the exact list.
"""

from __future__ import annotations

import re

import pytest

from tests.integration.delivery_support import (RFC3339, delete, new_resource, put,
                                                seen, subscribe, wait_count)
from tests.receiver import Receiver

pytestmark = pytest.mark.integration


@pytest.fixture
def receiver():
    r = Receiver().up()
    yield r
    r.down()


# -- §9.1 what is sent ---------------------------------------------------------------------

def test_no_record_and_put_is_create_then_newer_put_is_update(flare, receiver):
    rid, base = new_resource(flare)
    subscribe(flare, rid, f"{receiver.url}/s/{{id}}")
    doc = f"{base}/1"
    put(flare, doc, 1, name="one")
    wait_count(receiver, "/s/1", 1)
    put(flare, doc, 2, name="two")
    got = wait_count(receiver, "/s/1", 2)
    assert seen(got) == [("create", 1), ("update", 2)]
    assert [r.json()["document"] for r in got] == [{"version": 1, "name": "one"},
                                                    {"version": 2, "name": "two"}]


def test_older_or_equal_put_sends_nothing(flare, receiver):
    rid, base = new_resource(flare)
    subscribe(flare, rid, f"{receiver.url}/s/{{id}}")
    doc = f"{base}/1"
    put(flare, doc, 5)
    wait_count(receiver, "/s/1", 1)
    put(flare, doc, 4, name="older")
    put(flare, doc, 5, name="equal")
    put(flare, doc, 6, name="marker")
    got = wait_count(receiver, "/s/1", 2)
    assert seen(got) == [("create", 5), ("update", 6)]
    assert len(receiver.received()) == 2


def test_delete_is_sent_with_last_content_and_clears_the_record(flare, receiver):
    rid, base = new_resource(flare)
    subscribe(flare, rid, f"{receiver.url}/s/{{id}}", data={"rev": "{revision}", "id": "{id}"})
    doc = f"{base}/1"
    put(flare, doc, 3, name="three")
    wait_count(receiver, "/s/1", 1)
    delete(flare, doc)
    got = wait_count(receiver, "/s/1", 2)
    body = got[1].json()
    assert body == {"id": doc, "action": "delete", "updatedAt": body["updatedAt"],
                    "data": {"rev": "3", "id": "1"}, "document": {"version": 3, "name": "three"}}
    assert re.match(RFC3339, body["updatedAt"])
    # The record is cleared: the same revision again is a create.
    put(flare, doc, 3, name="again")
    got = wait_count(receiver, "/s/1", 3)
    assert seen(got) == [("create", 3), ("delete", 3), ("create", 3)]
    assert got[2].json()["document"] == {"version": 3, "name": "again"}
    assert len(receiver.received()) == 3


def test_late_subscriber_gets_create_at_same_revision_and_older_one_gets_nothing(flare, receiver):
    rid, base = new_resource(flare)
    subscribe(flare, rid, f"{receiver.url}/old/{{id}}")
    doc = f"{base}/1"
    put(flare, doc, 3)
    wait_count(receiver, "/old/1", 1)
    subscribe(flare, rid, f"{receiver.url}/new/{{id}}")
    put(flare, doc, 3, name="same revision")
    late = wait_count(receiver, "/new/1", 1)
    assert seen(late) == [("create", 3)]
    assert late[0].json()["document"] == {"version": 3, "name": "same revision"}
    put(flare, doc, 4)  # marker for both
    wait_count(receiver, "/new/1", 2)
    old = wait_count(receiver, "/old/1", 2)
    assert seen(old) == [("create", 3), ("update", 4)]
    assert seen(receiver.received("/new/1")) == [("create", 3), ("update", 4)]


def test_delete_without_record_sends_nothing(flare, receiver):
    rid, base = new_resource(flare)
    subscribe(flare, rid, f"{receiver.url}/old/{{id}}")
    doc = f"{base}/1"
    put(flare, doc, 1)
    wait_count(receiver, "/old/1", 1)
    subscribe(flare, rid, f"{receiver.url}/new/{{id}}")  # no record of the document
    delete(flare, doc)
    wait_count(receiver, "/old/1", 2)
    put(flare, doc, 2)  # marker: after a delete, a create for both
    new = wait_count(receiver, "/new/1", 1)
    old = wait_count(receiver, "/old/1", 3)
    assert seen(old) == [("create", 1), ("delete", 1), ("create", 2)]
    assert seen(new) == [("create", 2)]
    assert len(receiver.received("/new/1")) == 1


# -- §9.2 the request ------------------------------------------------------------------------

def test_request_from_endpoint_with_envelope_and_data(flare, receiver):
    rid, base = new_resource(flare)
    sub = subscribe(flare, rid, f"{receiver.url}/feed/{{id}}/in", method="put",
                    endpoint={"headers": {"Authorization": ["Basic abc"], "X-Trace": ["t1"]}},
                    data={"service": "user", "id": "{id}", "rev": "{revision}",
                          "both": "{id}/{revision}", "n": 3, "flag": True,
                          "list": ["{id}", "x", 1]})
    doc = f"{base}/42"
    document = put(flare, doc, 7, name="seven", nested={"a": [1, 2]})
    (request,) = wait_count(receiver, "/feed/42/in", 1)
    stored = flare.get(f"/documents/{doc}").json()
    assert request.method == "PUT"
    assert request.headers["authorization"] == "Basic abc"
    assert request.headers["x-trace"] == "t1"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"].startswith("msg_")
    assert request.headers["webhook-timestamp"].isdigit()
    assert "webhook-signature" not in request.headers  # no secret
    assert request.json() == {
        "id": doc, "action": "create", "updatedAt": stored["updatedAt"],
        "data": {"service": "user", "id": "42", "rev": "7", "both": "42/7", "n": 3,
                 "flag": True, "list": ["42", "x", 1]},
        "document": document,
    }
    assert re.match(RFC3339, request.json()["updatedAt"])
    # A delivery never changes the stored subscription.
    assert flare.get(f"/resources/{rid}/subscriptions/{sub['id']}").json() == sub


def test_action_overrides_method_url_and_replaces_headers(flare, receiver):
    rid, base = new_resource(flare)
    subscribe(flare, rid, f"{receiver.url}/main/{{id}}", method="post",
              endpoint={"headers": {"X-Common": ["c"]},
                        "actions": {"update": {"url": f"{receiver.url}/upd/{{id}}",
                                               "method": "patch",
                                               "headers": {"X-Action": ["u"],
                                                           "content-TYPE": ["text/plain"]}},
                                    "delete": {"method": "delete"}}})
    doc = f"{base}/5"
    put(flare, doc, 1)
    wait_count(receiver, "/main/5", 1)
    put(flare, doc, 2)
    (update,) = wait_count(receiver, "/upd/5", 1)
    delete(flare, doc)
    create, removal = wait_count(receiver, "/main/5", 2)

    assert (create.method, create.json()["action"]) == ("POST", "create")
    assert create.headers["x-common"] == "c"
    assert create.headers["content-type"] == "application/json"
    assert "x-action" not in create.headers

    assert (update.method, update.json()["action"]) == ("PATCH", "update")
    assert update.headers["x-action"] == "u"
    assert update.headers["content-type"] == "text/plain"  # set by the action: not added
    assert "x-common" not in update.headers  # replaced, not merged

    assert (removal.method, removal.json()["action"]) == ("DELETE", "delete")
    assert removal.headers["x-common"] == "c"
    assert removal.headers["content-type"] == "application/json"
    assert len(receiver.received()) == 3


def test_empty_method_is_get_and_action_method_wins(flare, receiver):
    rid, base = new_resource(flare)
    subscribe(flare, rid, f"{receiver.url}/m/{{id}}", method=None,
              endpoint={"actions": {"create": {"method": "put"}}})
    doc = f"{base}/1"
    put(flare, doc, 1)
    wait_count(receiver, "/m/1", 1)
    put(flare, doc, 2)
    got = wait_count(receiver, "/m/1", 2)
    assert [(r.method, r.json()["action"]) for r in got] == [("PUT", "create"), ("GET", "update")]


def test_no_method_and_no_actions_is_get(flare, receiver):
    rid, base = new_resource(flare)
    subscribe(flare, rid, f"{receiver.url}/g/{{id}}", method=None)
    put(flare, f"{base}/1", 1)
    (request,) = wait_count(receiver, "/g/1", 1)
    assert request.method == "GET"
    assert seen([request]) == [("create", 1)]


def test_without_envelope_the_raw_document_is_sent(flare, receiver):
    rid, base = new_resource(flare)
    subscribe(flare, rid, f"{receiver.url}/raw/{{id}}", content={"envelope": False})
    doc = f"{base}/1"
    first = put(flare, doc, 1, name="one")
    wait_count(receiver, "/raw/1", 1)
    second = put(flare, doc, 2, name="two", tags=["a"])
    wait_count(receiver, "/raw/1", 2)
    delete(flare, doc)
    got = wait_count(receiver, "/raw/1", 3)
    assert [r.json() for r in got] == [first, second, second]  # delete: the last stored one
    assert [r.headers["content-type"] for r in got] == ["application/json"] * 3


def test_envelope_without_document(flare, receiver):
    rid, base = new_resource(flare)
    subscribe(flare, rid, f"{receiver.url}/nodoc/{{id}}", content={"document": False})
    doc = f"{base}/1"
    put(flare, doc, 1, name="one")
    (request,) = wait_count(receiver, "/nodoc/1", 1)
    body = request.json()
    assert body == {"id": doc, "action": "create", "updatedAt": body["updatedAt"]}
    assert re.match(RFC3339, body["updatedAt"])


def test_redirects_are_not_followed(flare):
    """A 302 counts as its status: discarded when listed there, else retried."""
    landing = Receiver().up()
    server = Receiver(redirect_to=f"{landing.url}/landing").up()
    try:
        rid, base = new_resource(flare)
        subscribe(flare, rid, f"{server.url}/d/{{id}}", discard=(302,))
        subscribe(flare, rid, f"{server.url}/r/{{id}}", retry={"initial": 0.1, "max": 0.2})
        server.answer("/d/1", 302, 302)
        server.answer("/r/1", 302)
        doc = f"{base}/1"
        put(flare, doc, 1)
        wait_count(server, "/d/1", 1)
        wait_count(server, "/r/1", 2)
        put(flare, doc, 2)
        discarded = wait_count(server, "/d/1", 2)
        retried = wait_count(server, "/r/1", 3)
        assert seen(discarded) == [("create", 1), ("update", 2)]  # discarded: recorded
        assert seen(retried) == [("create", 1), ("create", 1), ("update", 2)]
        assert retried[0].headers["webhook-id"] == retried[1].headers["webhook-id"]
        assert landing.received() == []
    finally:
        server.down()
        landing.down()
