"""Helpers shared by the notification tests (tests/integration/test_delivery*.py).

A fresh resource per test on a host of its own, subscriptions pointing at a real receiver
(tests/receiver.py, which also answers 3xx with a ``Location`` for §9.2 and holds a path
until released for §9.4).
"""

from __future__ import annotations

import base64
import os
import threading
import time

import httpx

from tests.flare_process import poll, unique_name
from tests.receiver import Received, Receiver

RFC3339 = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"
#: Fast retries for tests that wait on them (§9.6 delivery.retry).
FAST = {"initial": 0.1, "max": 0.3}


def new_resource(flare) -> tuple[str, str]:
    """A resource ``http://<own host>/users/{id}`` with revision field ``version``;
    returns ``(resource id, document base URL without {id})``."""
    host = f"{unique_name('api')}.test"
    answer = flare.post("/resources", json={"endpoint": f"http://{host}/users/{{id}}",
                                            "change": {"field": "version"}})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"], f"http://{host}/users"


def subscribe(flare, rid: str, url: str | None = None, *, method: str | None = "post",
              success=(200,), discard=(410,), retry: dict | None = None, **extra) -> dict:
    """Create a subscription; ``extra`` goes into the body as is (content, data, secret...)."""
    endpoint = dict(extra.pop("endpoint", {}))
    if url is not None:
        endpoint["url"] = url
    if method is not None:
        endpoint["method"] = method
    delivery = {"success": list(success), "discard": list(discard)}
    if retry is not None:
        delivery["retry"] = retry
    answer = flare.post(f"/resources/{rid}/subscriptions",
                        json={"endpoint": endpoint, "delivery": delivery, **extra})
    assert answer.status_code == 201, answer.text
    return answer.json()


def put(flare, url: str, version: int, **fields) -> dict:
    document = {"version": version, **fields}
    answer = flare.put(f"/documents/{url}", json=document)
    assert answer.status_code == 202, answer.text
    return document


def delete(flare, url: str) -> None:
    answer = flare.delete(f"/documents/{url}")
    assert answer.status_code == 202, answer.text


def wait_count(receiver, path: str, count: int, timeout: float = 20.0) -> list[Received]:
    """The requests to ``path`` once there are at least ``count`` of them."""
    return poll(lambda: (lambda got: got if len(got) >= count else None)(receiver.received(path)),
                timeout=timeout, message=f"{count} request(s) to {path}")


def seen(requests: list[Received]) -> list[tuple[str, int]]:
    """``(action, document version)`` of each enveloped request, in arrival order."""
    return [(r.json()["action"], r.json()["document"]["version"]) for r in requests]


def deliveries(flare, rid: str, sid: str, state: str | None = None) -> list[dict]:
    params = {} if state is None else {"state": state}
    answer = flare.get(f"/resources/{rid}/subscriptions/{sid}/deliveries", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()["deliveries"]


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def always(receiver: Receiver, path: str, status: int, times: int = 10_000) -> None:
    receiver.answer(path, *([status] * times))


def now() -> float:
    return time.time()


class SteadyPuts(threading.Thread):
    """PUTs documents 0, 1, 2... of ``base`` one after another until stopped, through
    whatever happens to the broker; ``accepted`` holds the documents answered 202,
    ``refused`` (monotonic time, status or error name) every other answer."""

    def __init__(self, base_url: str, base: str, timeout: float = 10.0) -> None:
        super().__init__(daemon=True, name="steady-puts")
        self.base_url, self.base, self.timeout = base_url, base, timeout
        self.accepted: list[int] = []
        self.refused: list[tuple[float, int | str]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=self.timeout) as client:
            doc = 0
            while not self.halt.is_set():
                try:
                    status: int | str = client.put(f"/documents/{self.base}/{doc}",
                                                   json={"version": 1}).status_code
                except httpx.TransportError as exc:
                    status = exc.__class__.__name__
                if status == 202:
                    self.accepted.append(doc)
                    doc += 1
                else:
                    self.refused.append((time.monotonic(), status))

    def finish(self) -> None:
        self.halt.set()
        self.join(30)
