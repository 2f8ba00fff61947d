"""Issue 9 (a): no message stops a stage (DESIGN.md invariant 6, SPEC §11a).

Each poison below once stopped the changes stage for good (it raised while writing the
record, outside the per-message guard, and stopped again after every restart). Now the
API refuses what it can see (400), a direct producer's copy is parked on the rejected
topic with its reason, and after each one a normal change is still delivered, /readyz
stays 200, and a restart parks nothing again and sends nothing twice.
"""

from __future__ import annotations

import orjson
import pytest

from app.config import Settings
from streams.stage import record_limit
from tests.flare_process import FlareProcess, poll
from tests.integration.delivery_support import new_resource, subscribe, wait_count
from tests.kafka_io import produce, read_all
from tests.receiver import Receiver

pytestmark = pytest.mark.integration

BIG = b"100000000000000000000"  # 10^20: past signed 64-bit


def nested(depth: int) -> bytes:
    """A JSON array nested ``depth`` levels (orjson reads 1,024, writes 255)."""
    return b"[" * depth + b"]" * depth


def put_value(url: str, document: bytes) -> bytes:
    """A SPEC §10 put, written by hand so that it can hold what orjson would not write."""
    return b'{"action":"put","id":' + orjson.dumps(url) + b',"document":' + document + b"}"


@pytest.fixture
def setup(flare_factory, tmp_path):
    receiver = Receiver().up()
    flare = flare_factory().start()
    rid, base = new_resource(flare)
    subscribe(flare, rid, f"{receiver.url}/hook/{{id}}")
    yield flare, receiver, base
    receiver.down()


def delivered_version(receiver: Receiver, doc: str, version: int) -> None:
    wait_count(receiver, f"/hook/{doc}", 1)
    poll(lambda: any(r.json()["document"]["version"] == version
                     for r in receiver.received(f"/hook/{doc}")),
         timeout=30, message=f"{doc} at version {version} delivered")


def still_healthy(flare: FlareProcess, receiver: Receiver, base: str, doc: str) -> None:
    assert flare.put(f"/documents/{base}/{doc}", json={"version": 1}).status_code == 202
    delivered_version(receiver, doc, 1)
    assert flare.readyz().status_code == 200, flare.readyz().text


def test_api_refuses_revisions_past_64_bits_and_documents_it_cannot_write(setup):
    flare, receiver, base = setup
    for body in (b'{"version": ' + BIG + b"}", b'{"version": 1e20}'):
        answer = flare.put(f"/documents/{base}/big", content=body)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["title"] == "invalid body"
        assert "revision out of range" in answer.json()["error"]["detail"]
    deep = flare.put(f"/documents/{base}/deep", content=b'{"version": 1, "n": ' + nested(300) + b"}")
    assert deep.status_code == 400, deep.text
    assert deep.json()["error"]["title"] == "invalid body"
    still_healthy(flare, receiver, base, "after-api")


def test_direct_poison_is_parked_and_the_stage_goes_on_across_a_restart(setup, kafka_bootstrap):
    flare, receiver, base = setup
    topic = f"{flare.prefix}.documents"
    # A document whose stored record is larger than a record may be, though the message
    # itself still fits the documents topic.
    filler = b"x" * (record_limit(Settings()) - 40)
    poison = [
        (f"{base}/big", put_value(f"{base}/big", b'{"version":' + BIG + b"}"),
         "revision out of range"),
        (f"{base}/bigfloat", put_value(f"{base}/bigfloat", b'{"version":1e20}'),
         "revision out of range"),
        (f"{base}/deep", put_value(f"{base}/deep", b'{"version":1,"n":' + nested(300) + b"}"),
         "cannot be encoded"),
        (f"{base}/huge", put_value(f"{base}/huge", b'{"version":1,"f":"' + filler + b'"}'),
         "larger than"),
    ]
    produce(kafka_bootstrap, topic, [(url.encode(), value) for url, value, _ in poison])
    still_healthy(flare, receiver, base, "after-direct")

    rejected = f"{flare.prefix}.documents.rejected"
    parked = read_all(kafka_bootstrap, rejected, len(poison))
    assert len(parked) == len(poison)
    by_key = {record.key.decode(): dict(record.headers) for record in parked}
    for url, value, reason in poison:
        assert reason in by_key[url]["flare-reason"].decode(), (url, by_key[url])
    for url, _, _ in poison:  # nothing of them was stored or sent
        assert flare.get(f"/documents/{url}").status_code == 404
        assert receiver.received(f"/hook/{url.rsplit('/', 1)[1]}") == []

    # A restart reads from the last commit: the poison is not read again.
    flare.stop()
    flare.start()
    still_healthy(flare, receiver, base, "after-restart")
    assert len(read_all(kafka_bootstrap, rejected, len(poison) + 1, timeout=5)) == len(poison)
    assert len(receiver.received("/hook/after-direct")) == 1, "sent again after the restart"
    log = flare.log()
    assert "stage failed" not in log, log[-3000:]
