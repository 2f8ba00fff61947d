"""Issue: replay (DESIGN.md invariant 5, SPEC §10). A new Flare app id on the same topics
(same FLARE_TOPIC_PREFIX, new FLARE_APP_ID) starts with empty tables and rebuilds them by
reading the topics from the beginning: the documents it answers are the same, and the
subscribers are not sent again what they already have."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.flare_process import poll, unique_name
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
