"""/openapi.json against the running app, both ways (SPEC §11): every route of the app is
documented, and every documented path and method answers a valid call with something other
than 404 or 405 (objects created first, tokens set)."""

from __future__ import annotations

import re
from types import SimpleNamespace

import httpx
import pytest
from starlette.routing import Mount, Route

from tests.flare_process import poll, unique_name
from tests.integration.delivery_support import new_resource, subscribe
from tests.receiver import Receiver

pytestmark = pytest.mark.integration

TOKEN = "openapi-token"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def test_every_route_of_the_app_is_documented() -> None:
    from api.app import create_api
    from api.openapi import DOCUMENT

    documented = {(_shape(path), method) for path, item in DOCUMENT["paths"].items()
                  for method in item if method in HTTP_METHODS}
    app = create_api(SimpleNamespace(settings=SimpleNamespace(api_tokens=())))
    routes = set()
    for route in app.routes:
        if isinstance(route, Mount):  # the static files of /docs
            continue
        assert isinstance(route, Route)
        routes |= {(_shape(route.path), m.lower()) for m in route.methods or ()} - {
            (_shape(route.path), "head")}
    assert routes - documented == set(), "routes missing from /openapi.json"
    assert documented - routes == set(), "documented paths the app does not route"


def test_every_documented_operation_answers(flare_factory) -> None:
    flare = flare_factory(prefix=unique_name("oa"), env={"FLARE_API_TOKENS": TOKEN})
    flare.client.headers["authorization"] = f"Bearer {TOKEN}"
    flare.start()
    document = flare.get("/openapi.json").json()
    receiver = Receiver().up()
    try:
        rid, base = new_resource(flare)
        sid = subscribe(flare, rid, receiver.url + "/oa/{id}")["id"]
        doomed_rid, _ = new_resource(flare)  # deleted below: a resource without subscriptions
        doomed_sid = subscribe(flare, rid, receiver.url + "/gone/{id}")["id"]
        doc_url = f"{base}/1"
        assert flare.put(f"/documents/{doc_url}", json={"version": 1}).status_code == 202
        poll(lambda: flare.get(f"/documents/{doc_url}").status_code == 200, timeout=20,
             message="the document stored")
        gone_url = f"{base}/2"

        # (path as documented, method) → (concrete path, request keywords)
        calls = {
            ("/", "get"): ("/", {}),
            ("/healthz", "get"): ("/healthz", {}),
            ("/readyz", "get"): ("/readyz", {}),
            ("/metrics", "get"): ("/metrics", {}),
            ("/openapi.json", "get"): ("/openapi.json", {}),
            ("/docs", "get"): ("/docs", {}),
            ("/resources", "get"): ("/resources", {}),
            ("/resources", "post"): ("/resources", {"json": {
                "endpoint": f"http://{unique_name('oa')}.test/x/{{id}}", "change": {"field": "v"}}}),
            ("/resources/{rid}", "get"): (f"/resources/{rid}", {}),
            ("/resources/{rid}", "delete"): (f"/resources/{doomed_rid}", {}),
            ("/resources/{rid}/subscriptions", "get"): (f"/resources/{rid}/subscriptions", {}),
            ("/resources/{rid}/subscriptions", "post"): (f"/resources/{rid}/subscriptions", {
                "json": {"endpoint": {"url": receiver.url + "/new/{id}", "method": "post"},
                         "delivery": {"success": [200], "discard": [410]}}}),
            ("/resources/{rid}/subscriptions/{sid}", "get"): (
                f"/resources/{rid}/subscriptions/{sid}", {}),
            ("/resources/{rid}/subscriptions/{sid}", "delete"): (
                f"/resources/{rid}/subscriptions/{doomed_sid}", {}),
            ("/resources/{rid}/subscriptions/{sid}/deliveries", "get"): (
                f"/resources/{rid}/subscriptions/{sid}/deliveries", {}),
            ("/resources/{rid}/subscriptions/{sid}/deliveries/redrive", "post"): (
                f"/resources/{rid}/subscriptions/{sid}/deliveries/redrive", {}),
            ("/resources/{rid}/subscriptions/{sid}/backfill", "post"): (
                f"/resources/{rid}/subscriptions/{sid}/backfill", {}),
            ("/documents/{url}", "get"): (f"/documents/{doc_url}", {}),
            ("/documents/{url}", "put"): (f"/documents/{gone_url}", {"json": {"version": 1}}),
            ("/documents/{url}", "delete"): (f"/documents/{gone_url}", {}),
            ("/ui/login", "get"): ("/ui/login", {}),
            ("/ui/login", "post"): ("/ui/login", {"data": {"token": TOKEN}}),
            ("/ui", "get"): ("/ui", {}),
            ("/ui/health/{sid}", "get"): (f"/ui/health/{sid}", {}),
            ("/ui/redrive/{rid}/{sid}", "post"): (f"/ui/redrive/{rid}/{sid}", {}),
        }
        documented = {(path, method) for path, item in document["paths"].items()
                      for method in item if method in HTTP_METHODS}
        assert documented == set(calls), "a documented operation without a valid call here"

        answers = {}
        with httpx.Client(base_url=flare.base_url, follow_redirects=False, timeout=30,
                          headers={"authorization": f"Bearer {TOKEN}"},
                          cookies={"flare_token": TOKEN}) as client:
            for (path, method), (concrete, kwargs) in calls.items():  # deletes come after
                answer = client.request(method.upper(), concrete, **kwargs)
                answers[(path, method)] = answer.status_code
                assert answer.status_code not in (404, 405), (path, method, answer.text)
                documented_statuses = document["paths"][path][method]["responses"]
                assert str(answer.status_code) in documented_statuses, (
                    path, method, answer.status_code, answer.text[:200])
        assert answers[("/ui", "get")] == 200 and answers[("/documents/{url}", "get")] == 200
    finally:
        receiver.down()
