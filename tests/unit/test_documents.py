"""tables/documents.py: changes as the API and the changes stage decide them (SPEC §8, §10)."""

from __future__ import annotations

import itertools

import orjson
import pytest

from tables.documents import (Change, Rejected, ResourceIndex, apply, change_value,
                              decode_document, is_live, match, parse_message, stored_record)
from tables.errors import FlareError
from tables.resources import Resource
from tables.urls import match_resource

USERS = Resource("r-users", "http://api.test/users/{id}", "version", "", 1)
DATED = Resource("r-dated", "http://api.test/dated/{id}", "at", "2006-01-02T15:04:05Z07:00", 2)
ANY = Resource("r-any", "http://api.test/{kind}/{id}", "version", "", 3)
INDEX = ResourceIndex([USERS, DATED, ANY])


def message(**fields) -> bytes:
    return orjson.dumps(fields)


# -- parse_message: what a direct producer's message must be (§10) -------------------------

@pytest.mark.parametrize("key, value, reason", [
    (b"k", None, "empty value"),                                              # tombstone
    (b"k", b"{nope", "value is not JSON"),
    (b"k", b"[1]", "value is not a JSON object"),
    (b"k", message(action="patch", id="http://api.test/users/1"), "unknown action 'patch'"),
    (b"k", message(action="put"), "missing 'id'"),
    (None, message(action="delete", id="http://api.test/users/1"), "missing key"),
    (b"http://api.test/users/2", message(action="delete", id="http://api.test/users/1"),
     "differs from id"),
    (b"http://x.test/a/1", message(action="put", id="http://x.test/a/1", document={"version": 1}),
     "could not found a resource for this uri"),                              # §8 no match
    (b"http://api.test/users/1?q", message(action="put", id="http://api.test/users/1?q",
                                           document={"version": 1}), "invalid id"),  # §8 query
    (b"http://api.test/users/1", message(action="put", id="http://api.test/users/1"),
     "missing 'document'"),
    (b"http://api.test/users/1", message(action="put", id="http://api.test/users/1",
                                         document={"version": [1]}), "data type not supported"),
    (b"http://api.test/dated/1", message(action="put", id="http://api.test/dated/1",
                                         document={"at": "yesterday"}), "error during parse time"),
])
def test_rejected_messages_say_why(key, value, reason):
    with pytest.raises(Rejected) as caught:
        parse_message(key, value, INDEX, 1_700_000_000_000)
    assert reason in caught.value.reason


def test_put_message_becomes_a_change():
    url = "http://api.test/users/7"
    change = parse_message(url.encode(), change_value("put", url, {"version": 4.9}), INDEX,
                           1_700_000_000_999)
    assert change == Change("put", url, "r-users", 4, {"version": 4.9}, 1_700_000_000)


def test_delete_message_becomes_a_change():
    url = "http://api.test/orders/7"  # the generic resource: a literal wins only where it differs
    change = parse_message(url.encode(), change_value("delete", url), INDEX, 5_000)
    assert change == Change("delete", url, "r-any", None, None, 5)


# -- match and decode_document: the API's checks (§8) -------------------------------------

def test_match_validates_the_url_first():
    with pytest.raises(FlareError) as caught:
        match("http://api.test/users/1#f", INDEX)
    assert (caught.value.status, caught.value.title) == (400, "invalid id")


def test_match_without_resource_is_404():
    with pytest.raises(FlareError) as caught:
        match("http://api.test/a/b/c", INDEX)
    assert caught.value == FlareError(404, "error during resource search",
                                      "could not found a resource for this uri 'http://api.test/a/b/c'")


@pytest.mark.parametrize("body", [b"", b"nope", b"[1]", b"1", b'"s"', b"null"])
def test_document_must_be_an_object(body):
    with pytest.raises(FlareError) as caught:
        decode_document(body)
    assert caught.value.title == "invalid body"
    assert caught.value.detail.startswith("error during body unmarshal")


# -- apply: what a change does to the stored document (§8) ----------------------------------

def put(revision: int, name: str = "x") -> Change:
    return Change("put", "u", "r", revision, {"version": revision, "name": name}, 10)


DELETE = Change("delete", "u", "r", None, None, 11)


@pytest.mark.parametrize("stored, change, changed, kept", [
    (None, put(1), True, 1),                           # first put stores
    (stored_record(put(2)), put(3), True, 3),          # newer replaces
    (stored_record(put(3)), put(3, "other"), False, 3),  # equal changes nothing
    (stored_record(put(3)), put(2), False, 3),         # older never overwrites (§12.7)
])
def test_highest_revision_wins(stored, change, changed, kept):
    applied = apply(stored, change)
    assert applied.changed is changed
    assert applied.stored["revision"] == kept
    assert applied.previous == stored


def test_delete_leaves_a_mark_and_keeps_the_previous_for_the_fan_out():
    stored = stored_record(put(4))
    applied = apply(stored, DELETE)
    assert applied.changed and applied.previous == stored and applied.offer
    assert applied.stored == {"v": 1, "deleted": True, "revision": 4,
                              "content": {"version": 4, "name": "x"}, "resource": "r",
                              "updatedAt": 11}
    assert not is_live(applied.stored)


def test_delete_of_nothing_changes_nothing():
    assert apply(None, DELETE).changed is False
    mark = apply(stored_record(put(4)), DELETE).stored
    again = apply(mark, DELETE)
    assert (again.changed, again.previous) == (False, None)  # nothing to tell anyone


def test_a_put_after_a_delete_creates_again_at_any_revision():
    mark = apply(stored_record(put(4)), DELETE).stored
    applied = apply(mark, put(1))
    assert applied.changed and applied.previous is None
    assert applied.stored["revision"] == 1 and is_live(applied.stored)


def test_a_record_of_a_deleted_resource_is_no_document_of_the_new_one():
    """SPEC §5: a deleted resource's documents go. A resource created again for the same
    endpoint has another id: its first put creates at any revision, and a delete of a
    document only the old resource had tells nobody (it would send the old content)."""
    old = stored_record(put(9))  # resource "r"
    again = Change("put", "u", "r2", 1, {"version": 1}, 12)
    applied = apply(old, again)
    assert applied.changed and applied.previous is None and applied.stored["resource"] == "r2"
    gone = apply(old, Change("delete", "u", "r2", None, None, 12))
    assert (gone.changed, gone.previous) == (False, None)


# -- apply with offsets: a change read again after a crash changes nothing ----------------

def test_records_keep_the_offset_of_the_change_that_wrote_them():
    assert apply(None, put(1), offset=7).stored["offset"] == 7
    assert apply(stored_record(put(1)), DELETE, offset=9).stored["offset"] == 9


def test_a_put_replayed_from_before_a_delete_does_not_create_the_document_again():
    first = apply(None, put(3), offset=10).stored
    mark = apply(first, DELETE, offset=11).stored
    replayed = apply(mark, put(3), offset=10)
    assert (replayed.changed, replayed.offer, replayed.stored) == (False, False, mark)
    # A put after the delete (a later offset) creates it again, at any revision.
    assert apply(mark, put(1), offset=12).changed


def test_the_change_that_wrote_the_record_is_offered_again():
    stored = apply(None, put(3), offset=10).stored
    again = apply(stored, put(3), offset=10)
    assert (again.changed, again.offer) == (False, True)
    mark = apply(stored, DELETE, offset=11).stored
    again = apply(mark, DELETE, offset=11)
    # Its offers need the last content, which the mark keeps.
    assert (again.changed, again.offer, again.previous) == (False, True, mark)
    assert again.previous["revision"] == 3


def test_an_older_change_read_again_is_not_offered_again():
    stored = apply(apply(None, put(3), offset=10).stored, put(5), offset=12).stored
    assert apply(stored, put(3), offset=10).offer is False
    assert apply(stored, put(4), offset=11).offer is False


def test_stored_record_shape():
    assert stored_record(put(5)) == {"v": 1, "revision": 5, "content": {"version": 5, "name": "x"},
                                     "resource": "r", "updatedAt": 10}


# -- ResourceIndex: the same answers as match_resource, faster ------------------------------

def test_index_agrees_with_match_resource():
    resources = [USERS, DATED, ANY,
                 Resource("r-deep", "http://api.test/users/{id}/items/{item}", "v", "", 4),
                 Resource("r-other", "https://API.test/users/{id}", "v", "", 5),
                 Resource("r-port", "http://api.test:8080/users/{id}", "v", "", 6)]
    index = ResourceIndex(resources)
    pairs = [(r.id, r.endpoint) for r in resources]
    hosts = ["http://api.test", "https://api.test", "http://API.test", "http://api.test:8080",
             "http://other.test"]
    paths = ["/users/1", "/dated/1", "/orders/1", "/users/1/items/2", "/users", "/users/a+b",
             "/users/%2F", "/a/b/c"]
    for host, path in itertools.product(hosts, paths):
        url = host + path
        expected = match_resource(url, pairs)
        found = index(url)
        assert (found.id if found else None) == expected, url


def test_index_of_reuses_an_index_for_the_same_resources():
    index = ResourceIndex.of([USERS])
    assert ResourceIndex.of([USERS], index) is index
    assert ResourceIndex.of([USERS, ANY], index) is not index


def test_match_remembers_answers_per_index_but_never_a_bad_url():
    index = ResourceIndex([USERS, ANY])
    assert match("http://api.test/users/1", index) is USERS
    assert index.matched == {"http://api.test/users/1": USERS}
    assert match("http://api.test/users/1", index) is USERS  # from the memo
    with pytest.raises(FlareError) as missing:
        match("http://other.test/users/1", index)
    assert missing.value.status == 404
    with pytest.raises(FlareError) as missing_again:  # a remembered "no resource" is a 404 too
        match("http://other.test/users/1", index)
    assert missing_again.value.status == 404
    for _ in range(2):
        with pytest.raises(FlareError) as bad:
            match("http://api.test/users/1?x=1", index)
        assert bad.value.status == 400
    assert "http://api.test/users/1?x=1" not in index.matched
    # A registry change gives a new index, which decides afresh.
    assert match("http://api.test/users/1", ResourceIndex([ANY])) is ANY


def test_the_purge_reads_the_records_own_resource_not_the_contents():
    from streams.changes import _resource_of
    record = stored_record(Change("put", "u", "r-own", 1,
                                  {"version": 1, "resource": "r-other", "x": '"resource":"r-x"'}, 1))
    assert _resource_of(orjson.dumps(record)) == "r-own"
    mark = apply(record, Change("delete", "u", "r-own", None, None, 2)).stored
    assert _resource_of(orjson.dumps(mark)) == "r-own"
