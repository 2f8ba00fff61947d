"""Issue: documents. SPEC §8 through a real `flare start`, and §10's direct-producer path."""

from __future__ import annotations

import http.client
import uuid

import orjson
import pytest

from tests.kafka_io import produce, read_all
from tests.flare_process import poll, unique_name

pytestmark = pytest.mark.integration

DATE_FORMAT = "2006-01-02T15:04:05Z07:00"


def new_resource(flare, *, fmt: str | None = None, field: str = "version") -> str:
    """A resource on a host of its own; returns the endpoint's base (without {id})."""
    host = f"{unique_name('api')}.test"
    change = {"field": field, **({"format": fmt} if fmt else {})}
    answer = flare.post("/resources", json={"endpoint": f"http://{host}/users/{{id}}", "change": change})
    assert answer.status_code == 201, answer.text
    return f"http://{host}/users"


def get_doc(flare, url: str):
    return flare.get(f"/documents/{url}")


def wait_revision(flare, url: str, revision: int) -> dict:
    def seen():
        answer = get_doc(flare, url)
        return answer.status_code == 200 and answer.json()["revision"] == revision and answer.json()

    return poll(seen, timeout=20, message=f"{url} at revision {revision}")


def wait_absent(flare, url: str) -> None:
    poll(lambda: get_doc(flare, url).status_code == 404, timeout=20, message=f"{url} absent")


# -- URL validation and resource matching (§8) ----------------------------------------

INVALID_URLS = [
    ("mailto:someone", "should not have opaque content 'someone'"),
    ("http://user:pw@api.test/users/1", "should not have user"),
    ("http:///users/1", "missing host"),
    ("http://api.test", "missing path"),
    ("http://api.test/users/1?x=1", "should not have query string 'x=1'"),
    ("/users/1", "missing host"),
    ("ftp://api.test/users/1", "unknown scheme 'ftp'"),
]


@pytest.mark.parametrize("url, detail", INVALID_URLS)
def test_put_rejects_invalid_urls(flare, url, detail):
    answer = flare.put(f"/documents/{url}", json={"version": 1})
    assert answer.status_code == 400
    assert answer.json() == {"error": {"title": "invalid id", "detail": detail}}


# SPEC §8's checks, each form, on GET too (before looking for the document); a fragment
# and a missing scheme can only be sent as a raw request target.
@pytest.mark.parametrize("url, detail", INVALID_URLS + [
    ("//api.test/users/1", "missing scheme"),
    ("http://api.test/users/1#frag", "should not have fragment 'frag'"),
])
def test_get_rejects_invalid_urls(flare, url, detail):
    connection = http.client.HTTPConnection("127.0.0.1", flare.port, timeout=10)
    try:
        connection.request("GET", f"/documents/{url}")
        answer = connection.getresponse()
        assert answer.status == 400
        assert orjson.loads(answer.read()) == {"error": {"title": "invalid id", "detail": detail}}
    finally:
        connection.close()


def test_put_without_matching_resource_is_404(flare):
    url = f"http://{unique_name('nohost')}.test/users/1"
    answer = flare.put(f"/documents/{url}", json={"version": 1})
    assert answer.status_code == 404
    assert answer.json() == {"error": {"title": "error during resource search",
                                       "detail": f"could not found a resource for this uri '{url}'"}}


def test_most_specific_resource_wins(flare):
    host = f"{unique_name('api')}.test"
    generic = flare.post("/resources", json={"endpoint": f"http://{host}/{{kind}}/{{id}}",
                                             "change": {"field": "a"}}).json()
    specific = flare.post("/resources", json={"endpoint": f"http://{host}/users/{{id}}",
                                              "change": {"field": "b"}}).json()
    assert generic["id"] != specific["id"]
    # field "b" is the specific resource's: a body with only "a" fails there.
    answer = flare.put(f"/documents/http://{host}/users/1", json={"a": 1})
    assert answer.status_code == 400
    assert answer.json()["error"]["detail"] == "data type not supported"
    assert flare.put(f"/documents/http://{host}/users/1", json={"b": 1}).status_code == 202
    assert flare.put(f"/documents/http://{host}/orders/1", json={"a": 1}).status_code == 202


# -- bodies and revisions (§8) -----------------------------------------------------------

@pytest.mark.parametrize("body", [b"", b"[1]", b"nope", b'"text"'])
def test_put_body_must_be_a_json_object(flare, body):
    base = new_resource(flare)
    answer = flare.put(f"/documents/{base}/1", content=body)
    assert answer.status_code == 400
    assert answer.json()["error"]["title"] == "invalid body"
    assert answer.json()["error"]["detail"].startswith("error during body unmarshal")


@pytest.mark.parametrize("value", [None, True, {"a": 1}, [1]])
def test_revision_of_unsupported_type(flare, value):
    base = new_resource(flare)
    answer = flare.put(f"/documents/{base}/1", json={"version": value})
    assert answer.status_code == 400
    assert answer.json() == {"error": {"title": "invalid body", "detail": "data type not supported"}}


def test_revision_missing(flare):
    base = new_resource(flare)
    answer = flare.put(f"/documents/{base}/1", json={"other": 1})
    assert answer.json() == {"error": {"title": "invalid body", "detail": "data type not supported"}}


def test_unparsable_date_revision(flare):
    base = new_resource(flare, fmt=DATE_FORMAT, field="updatedAt")
    answer = flare.put(f"/documents/{base}/1", json={"updatedAt": "yesterday"})
    assert answer.status_code == 400
    detail = answer.json()["error"]["detail"]
    assert detail.startswith(f"error during parse time using 'yesterday' with format '{DATE_FORMAT}': ")


def test_put_then_get_with_date_revision(flare):
    base = new_resource(flare, fmt=DATE_FORMAT, field="updatedAt")
    url = f"{base}/7"
    body = {"id": 7, "updatedAt": "2010-12-10T08:35:08.008Z"}
    answer = flare.put(f"/documents/{url}", json=body)
    assert answer.status_code == 202
    assert answer.content == b""
    got = wait_revision(flare, url, 1291970108008000000)
    assert got["id"] == url
    assert got["content"] == body
    assert got["updatedAt"].endswith("Z") and len(got["updatedAt"]) == 20


def test_number_revision_uses_integer_part_and_older_or_equal_is_ignored(flare):
    base = new_resource(flare)
    url = f"{base}/1"
    assert flare.put(f"/documents/{url}", json={"version": 5.9, "name": "five"}).status_code == 202
    wait_revision(flare, url, 5)
    assert flare.put(f"/documents/{url}", json={"version": 3, "name": "older"}).status_code == 202
    assert flare.put(f"/documents/{url}", json={"version": 5, "name": "equal"}).status_code == 202
    assert flare.put(f"/documents/{url}", json={"version": 6, "name": "newer"}).status_code == 202
    got = wait_revision(flare, url, 6)
    assert got["content"]["name"] == "newer"


def test_older_put_never_overwrites(flare):
    base = new_resource(flare)
    url = f"{base}/2"
    flare.put(f"/documents/{url}", json={"version": 10, "name": "ten"})
    wait_revision(flare, url, 10)
    flare.put(f"/documents/{url}", json={"version": 9, "name": "nine"})
    marker = f"{base}/marker"  # same resource, applied after the older put by the same agent
    flare.put(f"/documents/{marker}", json={"version": 1})
    # A later document on another key does not prove order across partitions, so also
    # re-check the document itself after a newer write on the same key.
    flare.put(f"/documents/{url}", json={"version": 11, "name": "eleven"})
    assert wait_revision(flare, url, 11)["content"]["name"] == "eleven"


def test_delete_then_get_404_and_next_put_recreates(flare):
    base = new_resource(flare)
    url = f"{base}/3"
    flare.put(f"/documents/{url}", json={"version": 4})
    wait_revision(flare, url, 4)
    answer = flare.delete(f"/documents/{url}")
    assert answer.status_code == 202 and answer.content == b""
    wait_absent(flare, url)
    assert get_doc(flare, url).json() == {"error": {
        "title": "error during document search", "detail": f"document '{url}' not found"}}
    flare.put(f"/documents/{url}", json={"version": 1})
    wait_revision(flare, url, 1)


def test_delete_checks_url_and_resource(flare):
    assert flare.delete("/documents/http://api.test/users/1?q=1").status_code == 400
    url = f"http://{unique_name('nohost')}.test/users/1"
    assert flare.delete(f"/documents/{url}").status_code == 404


def test_unknown_document_is_404(flare):
    url = f"http://{unique_name('x')}.test/users/1"
    assert get_doc(flare, url).status_code == 404


def test_resource_delete_removes_its_documents(flare):
    base = new_resource(flare)
    url = f"{base}/9"
    flare.put(f"/documents/{url}", json={"version": 1})
    wait_revision(flare, url, 1)
    resource_id = flare.get("/resources", params={"limit": 1000}).json()["resources"][-1]["id"]
    assert flare.delete(f"/resources/{resource_id}").status_code == 204
    wait_absent(flare, url)


# -- producers writing directly to Kafka (§10) --------------------------------------------

def test_direct_producer_valid_applied_bad_parked_with_reason(flare, kafka_bootstrap):
    base = new_resource(flare)
    good1, good2 = f"{base}/d1", f"{base}/d2"
    nowhere = f"http://{unique_name('nohost')}.test/users/1"
    bad = [
        (b"k-notjson", b"{not json", "value is not JSON"),
        (b"k-array", b"[1, 2]", "value is not a JSON object"),
        (f"{base}/d3".encode(), orjson.dumps({"action": "patch", "id": f"{base}/d3"}), "unknown action"),
        (nowhere.encode(), orjson.dumps({"action": "put", "id": nowhere, "document": {"version": 1}}),
         "could not found a resource"),
        (f"{base}/d4".encode(), orjson.dumps({"action": "put", "id": f"{base}/d4",
                                              "document": {"version": "x"}}), "invalid body"),
        (f"{base}/d5".encode(), orjson.dumps({"action": "put", "id": f"{base}/d5"}), "missing 'document'"),
    ]
    messages = [(good1.encode(), orjson.dumps({"action": "put", "id": good1, "document": {"version": 1}}))]
    messages += [(key, value) for key, value, _ in bad]
    messages += [(good2.encode(), orjson.dumps({"action": "put", "id": good2, "document": {"version": 2}}))]
    topic = f"{flare.prefix}.documents"
    produce(kafka_bootstrap, topic, messages)

    wait_revision(flare, good1, 1)
    wait_revision(flare, good2, 2)
    parked = read_all(kafka_bootstrap, f"{flare.prefix}.documents.rejected", len(bad))
    by_key = {record.key: record for record in parked}
    for key, value, reason in bad:
        record = by_key[key]
        assert record.value == value  # the original bytes
        headers = dict(record.headers)
        assert reason in headers["flare-reason"].decode(), headers
    # Still processing after the bad ones:
    late = f"{base}/late"
    produce(kafka_bootstrap, topic, [(late.encode(), orjson.dumps(
        {"action": "put", "id": late, "document": {"version": 3}}))])
    wait_revision(flare, late, 3)


def test_direct_producer_delete(flare, kafka_bootstrap):
    base = new_resource(flare)
    url = f"{base}/gone"
    flare.put(f"/documents/{url}", json={"version": 1})
    wait_revision(flare, url, 1)
    produce(kafka_bootstrap, f"{flare.prefix}.documents",
            [(url.encode(), orjson.dumps({"action": "delete", "id": url}))])
    wait_absent(flare, url)


# -- two processes: GET answers from the owner's table ------------------------------------

def test_get_from_either_process(flare_factory):
    name = unique_name("two")
    first = flare_factory(app_id=name, prefix=name).start()
    second = flare_factory(app_id=name, prefix=name).start()
    # Wait until both processes share the partitions.
    poll(lambda: first.readyz().status_code == 200 and second.readyz().status_code == 200,
         timeout=60, message="both ready")
    base = new_resource(first)
    urls = [f"{base}/{uuid.uuid4().hex[:8]}" for _ in range(24)]
    for n, url in enumerate(urls):
        assert first.put(f"/documents/{url}", json={"version": n + 1}).status_code == 202
    for n, url in enumerate(urls):
        wait_revision(second, url, n + 1)
        wait_revision(first, url, n + 1)
