"""Issue 9 (c): processes joining and leaving under load lose nothing and never send an
older revision after a newer one (DESIGN.md invariant 7).

Three `flare start` processes share one app id. 20,000 PUTs of rising revisions over many
documents go through whichever processes are up, 16 at a time, to two subscribers.
Meanwhile a fourth process starts, one stops (SIGTERM), one is killed (SIGKILL), and a
resource and a subscription are created on one process while documents of it are PUT on
another at once. Checked on the topics and at the receivers, not only at the end:

- every 202'd (document, revision) reaches ``<prefix>.deliveries`` as an offer for each
  subscriber, or is superseded there by a newer revision of its document;
- nothing of it is on the rejected topic;
- no receiver gets a revision older than one it already had; every one ends on the
  latest revision; duplicates (a ``webhook-id`` seen twice) stay ≤ 1 %.
"""

from __future__ import annotations

import random
import threading
from collections import Counter, defaultdict

import httpx
import orjson
import pytest

from tables.events import base_key
from tests.flare_process import FlareProcess, poll, unique_name
from tests.integration.delivery_support import new_resource, subscribe
from tests.kafka_io import end_offsets, read_all
from tests.receiver import Receiver

pytestmark = pytest.mark.integration

DOCUMENTS = 500
REVISIONS = 40  # 500 x 40 = 20,000 PUTs
WORKERS = 16


class Cluster:
    """The processes that are up, for the writers to pick from."""

    def __init__(self) -> None:
        self.up: list[FlareProcess] = []
        self.lock = threading.Lock()

    def pick(self, rng: random.Random) -> FlareProcess:
        with self.lock:
            return rng.choice(self.up)

    def add(self, process: FlareProcess) -> None:
        with self.lock:
            self.up.append(process)

    def remove(self, process: FlareProcess) -> None:
        with self.lock:
            self.up.remove(process)


class Writers:
    """16 threads PUT a plan of (document, revision), revisions rising per document; a PUT
    that gets no 202 (the process went away, or is not ready) is tried again elsewhere."""

    def __init__(self, cluster: Cluster, base: str, plan: list[tuple[int, int]]) -> None:
        self.cluster, self.base = cluster, base
        self.plan = plan
        self.next = 0
        self.lock = threading.Lock()
        self.accepted: list[tuple[str, int]] = []
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                        for n in range(WORKERS)]

    @property
    def done(self) -> int:
        with self.lock:
            return len(self.accepted)

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self, timeout: float) -> None:
        for thread in self.threads:
            thread.join(timeout)

    def _take(self) -> tuple[int, int] | None:
        with self.lock:
            if self.next >= len(self.plan):
                return None
            self.next += 1
            return self.plan[self.next - 1]

    def _run(self, n: int) -> None:
        rng = random.Random(n)
        clients: dict[int, httpx.Client] = {}
        while (item := self._take()) is not None:
            doc, revision = item
            url = f"{self.base}/{doc}"
            for _ in range(200):
                process = self.cluster.pick(rng)
                client = clients.get(process.port)
                if client is None:
                    client = clients[process.port] = httpx.Client(base_url=process.base_url,
                                                                  timeout=10.0)
                try:
                    answer = client.put(f"/documents/{url}", json={"version": revision, "doc": doc})
                except httpx.TransportError:
                    continue
                if answer.status_code == 202:
                    with self.lock:
                        self.accepted.append((url, revision))
                    break
                if answer.status_code not in (503,):
                    with self.lock:
                        self.errors.append(f"{answer.status_code} {answer.text[:200]}")
            else:
                with self.lock:
                    self.errors.append(f"no 202 for {url} at {revision}")
        for client in clients.values():
            client.close()


def plan(rng: random.Random) -> list[tuple[int, int]]:
    """Every (document, revision): documents interleaved, revisions rising per document."""
    remaining = {doc: 1 for doc in range(DOCUMENTS)}
    order = []
    while remaining:
        doc = rng.choice(list(remaining))
        order.append((doc, remaining[doc]))
        remaining[doc] += 1
        if remaining[doc] > REVISIONS:
            del remaining[doc]
    return order


def test_join_and_leave_under_load(flare_factory, kafka_bootstrap):
    name = unique_name("join")
    env = {"FLARE_DELIVERY_CONCURRENCY": "64"}
    make = lambda: flare_factory(app_id=name, prefix=name, env=env)  # noqa: E731
    receivers = [Receiver().up(), Receiver().up()]
    cluster = Cluster()
    a, b, c = make().start(), make().start(), make().start()
    for process in (a, b, c):
        cluster.add(process)
    try:
        rid, base = new_resource(a)
        subscriptions = [subscribe(a, rid, f"{r.url}/hook/{{id}}")["id"] for r in receivers]
        writers = Writers(cluster, base, plan(random.Random(9)))
        writers.start()
        total = len(writers.plan)

        def at(fraction: float) -> None:
            try:
                poll(lambda: writers.done >= total * fraction, timeout=300, interval=0.2,
                     message=f"{fraction:.0%} of the PUTs accepted")
            except AssertionError as exc:
                raise AssertionError(f"{exc}: {writers.done} accepted, errors "
                                     f"{writers.errors[:5]}") from None

        at(0.15)
        d = make().start()  # joins: a rebalance under load
        cluster.add(d)
        at(0.35)
        cluster.remove(b)
        b.stop()  # SIGTERM: leaves the group after its last commit
        at(0.55)
        cluster.remove(c)
        c.kill()  # SIGKILL: its partitions move after the session timeout
        at(0.7)
        # A registry write on one process and documents of it PUT at once on another.
        late_receiver = Receiver().up()
        receivers.append(late_receiver)
        late_rid, late_base = new_resource(a)
        late_sid = subscribe(a, late_rid, f"{late_receiver.url}/late/{{id}}")["id"]
        late_accepted = []
        for n in range(20):
            def accepted_on_d(n=n):
                answer = d.put(f"/documents/{late_base}/{n}", json={"version": 1})
                return answer.status_code == 202  # a 404 until d has read the resource
            poll(accepted_on_d, timeout=10, interval=0.05, message=f"late document {n} accepted")
            late_accepted.append(f"{late_base}/{n}")
        writers.join(timeout=600)
        assert writers.errors == [], writers.errors[:10]
        assert writers.done == total

        latest: dict[str, int] = defaultdict(int)
        for url, revision in writers.accepted:
            latest[url] = max(latest[url], revision)

        # Every subscriber ends on the latest revision of every document.
        def last_seen(receiver: Receiver, prefix: str) -> dict[str, int]:
            seen: dict[str, int] = {}
            for request in receiver.received():
                if request.path.startswith(prefix):
                    body = request.json()
                    seen[body["id"]] = body["document"]["version"]
            return seen

        for receiver in receivers[:2]:
            poll(lambda: last_seen(receiver, "/hook/") == latest, timeout=240, interval=1,
                 message="every document at its latest revision at the receiver")
        poll(lambda: set(last_seen(late_receiver, "/late/")) == set(late_accepted), timeout=60,
             message="the documents PUT right after their subscription was made")

        # On the topics: offers for every 202'd revision (or a newer one), nothing rejected.
        deliveries = f"{name}.deliveries"
        count = sum(end_offsets(kafka_bootstrap, deliveries).values())
        offered: dict[tuple[str, str], int] = defaultdict(lambda: -1)
        for record in read_all(kafka_bootstrap, deliveries, count):
            if record.value is None:  # a tombstone
                continue
            event = orjson.loads(record.value)
            if event["type"] == "offer" and event["kind"] == "put":
                sid, _, url = base_key(record.key).decode().partition("|")
                offered[(sid, url)] = max(offered[(sid, url)], event["revision"])
        for url, revision in writers.accepted:
            for sid in subscriptions:
                assert offered[(sid, url)] >= revision, (sid, url, revision)
        for url in late_accepted:
            assert offered[(late_sid, url)] >= 1, url
        rejected = sum(end_offsets(kafka_bootstrap, f"{name}.documents.rejected").values())
        assert rejected == 0

        # No revision older than one already received; few duplicates.
        for receiver in receivers:
            by_document: dict[str, list[int]] = defaultdict(list)
            ids = Counter()
            for request in receiver.received():
                body = request.json()
                by_document[body["id"]].append(body["document"]["version"])
                ids[request.headers["webhook-id"]] += 1
            for url, versions in by_document.items():
                assert versions == sorted(versions), (url, versions)
            duplicates = sum(n - 1 for n in ids.values())
            assert duplicates <= 0.01 * sum(ids.values()), (duplicates, sum(ids.values()))
    finally:
        for receiver in receivers:
            receiver.down()

