"""api.openapi: a valid OpenAPI 3.1 document of every SPEC §3 route, and a /docs page that
loads only from this server (SPEC §11)."""

from __future__ import annotations

import re
from types import SimpleNamespace

import orjson
import pytest
from openapi_spec_validator import validate
from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from api import openapi
from app import __version__


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(Starlette(routes=openapi.routes))


@pytest.fixture(scope="module")
def served(client: TestClient) -> dict:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    return orjson.loads(response.content)


def _shape(path: str) -> str:
    """Path with parameter names and converters erased: `/resources/{}`."""
    return re.sub(r"\{[^}]*\}", "{}", path)


# SPEC §3, one row per route: (path, methods).
SPEC_ROUTES = [
    ("/", {"get"}),
    ("/resources", {"get", "post"}),
    ("/resources/{}", {"get", "delete"}),
    ("/resources/{}/subscriptions", {"get", "post"}),
    ("/resources/{}/subscriptions/{}", {"get", "delete"}),
    ("/documents/{}", {"get", "put", "delete"}),
    ("/resources/{}/subscriptions/{}/deliveries", {"get"}),
    ("/resources/{}/subscriptions/{}/deliveries/redrive", {"post"}),
    ("/resources/{}/subscriptions/{}/backfill", {"post"}),
    ("/healthz", {"get"}),
    ("/readyz", {"get"}),
    ("/metrics", {"get"}),
    ("/openapi.json", {"get"}),
    ("/docs", {"get"}),
    ("/ui", {"get"}),
]

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def _documented(document: dict) -> dict[str, set[str]]:
    return {_shape(path): {m for m in item if m in HTTP_METHODS}
            for path, item in document["paths"].items()}


def test_served_document_is_valid_openapi_3_1(served: dict) -> None:
    validate(served)
    assert served["openapi"].startswith("3.1.")
    assert served["info"]["version"] == __version__
    assert served == openapi.DOCUMENT


@pytest.mark.parametrize(("path", "methods"), SPEC_ROUTES)
def test_every_spec_route_is_described(served: dict, path: str, methods: set[str]) -> None:
    assert _documented(served).get(path) == methods


def test_every_route_of_the_app_is_described(served: dict) -> None:
    """The app as `flare start` builds it (not started: no broker) has nothing undescribed."""
    from api.app import create_api

    app = create_api(SimpleNamespace(settings=SimpleNamespace(api_tokens=())))
    documented = _documented(served)
    for route in app.routes:
        if isinstance(route, Mount):  # static files of a page
            continue
        assert isinstance(route, Route)
        methods = {m.lower() for m in route.methods or ()} - {"head"}
        assert methods <= documented.get(_shape(route.path), set()), route.path


def _operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def _schema(document: dict, name: str) -> dict:
    return document["components"]["schemas"][name]


# SPEC §3-§8: the status codes each operation names.
STATUSES = [
    ("/resources", "get", {"200", "400", "401"}),
    ("/resources", "post", {"201", "400", "401", "409", "413"}),
    ("/resources/{rid}", "get", {"200", "401", "404"}),
    ("/resources/{rid}", "delete", {"204", "401", "404", "409"}),
    ("/resources/{rid}/subscriptions", "get", {"200", "400", "401"}),
    ("/resources/{rid}/subscriptions", "post", {"201", "400", "401", "404", "409", "413"}),
    ("/resources/{rid}/subscriptions/{sid}", "get", {"200", "401", "404"}),
    ("/resources/{rid}/subscriptions/{sid}", "delete", {"204", "401", "404"}),
    ("/documents/{url}", "get", {"200", "401", "404", "503"}),
    ("/documents/{url}", "put", {"202", "400", "401", "404", "413"}),
    ("/documents/{url}", "delete", {"202", "400", "401", "404"}),
    ("/resources/{rid}/subscriptions/{sid}/deliveries/redrive", "post", {"202", "401", "404", "503"}),
    ("/resources/{rid}/subscriptions/{sid}/backfill", "post", {"202", "401", "404", "503"}),
    ("/readyz", "get", {"200", "503"}),
]


@pytest.mark.parametrize(("path", "method", "statuses"), STATUSES)
def test_status_codes(served: dict, path: str, method: str, statuses: set[str]) -> None:
    assert set(served["paths"][path][method]["responses"]) == statuses


def test_created_answers_carry_location(served: dict) -> None:
    for path in ("/resources", "/resources/{rid}/subscriptions"):
        assert "Location" in served["paths"][path]["post"]["responses"]["201"]["headers"]


def test_wrong_method_and_unknown_route_are_described(served: dict) -> None:
    """SPEC §2: no operation answers them, so they are shared responses."""
    responses = served["components"]["responses"]
    assert "Allow" in responses["MethodNotAllowed"]["headers"]
    assert responses["NotFound"]["content"]["application/json"]["example"] == {
        "error": {"status": 404, "title": "not found"}}


def test_bearer_auth_except_probes(served: dict) -> None:
    """SPEC §2: every route but /healthz, /readyz and /metrics needs the token."""
    assert served["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer",
        "description": "Required only when Flare is configured with API tokens."}
    assert served["security"] == [{"bearerAuth": []}]
    open_paths = {path for path, _, op in _operations(served) if op.get("security") == []}
    assert open_paths == {"/healthz", "/readyz", "/metrics", "/ui/login"}
    # The dashboard's pages take the token from a cookie (a browser sends no header).
    cookie_paths = {path for path, _, op in _operations(served)
                    if op.get("security") == [{"uiCookie": []}]}
    assert cookie_paths == {"/ui", "/ui/redrive/{rid}/{sid}", "/ui/health/{sid}"}
    for path, method, op in _operations(served):
        if path not in open_paths | cookie_paths:
            assert "401" in op["responses"], (path, method)


def test_pagination_parameters(served: dict) -> None:
    """SPEC §4: offset and limit (default 30, at most 1000) on both list routes."""
    params = served["components"]["parameters"]
    assert params["limit"]["schema"] == {"type": "integer", "minimum": 0, "maximum": 1000,
                                         "default": 30}
    assert params["offset"]["schema"]["minimum"] == 0
    for path in ("/resources", "/resources/{rid}/subscriptions"):
        refs = {p["$ref"] for p in served["paths"][path]["get"]["parameters"]}
        assert {"#/components/parameters/offset", "#/components/parameters/limit"} <= refs
    pagination = _schema(served, "Pagination")
    assert set(pagination["required"]) == {"limit", "offset", "total"}


def test_body_and_answer_schemas(served: dict) -> None:
    """The shapes of SPEC §2, §5, §7, §8 and §9.6."""
    assert set(_schema(served, "Error")["properties"]["error"]["properties"]) >= {
        "title", "detail"}
    assert set(_schema(served, "Resource")["required"]) == {
        "id", "endpoint", "change", "createdAt"}
    assert set(_schema(served, "Document")["required"]) == {
        "id", "content", "updatedAt", "revision"}
    assert set(_schema(served, "ResourceList")["properties"]) == {"pagination", "resources"}
    assert set(_schema(served, "SubscriptionList")["properties"]) == {
        "pagination", "subscriptions"}
    create = _schema(served, "SubscriptionCreate")["properties"]
    assert set(create) == {"endpoint", "delivery", "content", "data", "secret"}
    endpoint = _schema(served, "EndpointCreate")["properties"]
    assert set(endpoint) == {"url", "method", "headers", "actions"}
    assert set(endpoint["actions"]["properties"]) == {"create", "update", "delete"}
    assert _schema(served, "Headers")["additionalProperties"] == {
        "type": "array", "items": {"type": "string"}}
    delivery = _schema(served, "DeliveryPolicy")["properties"]
    assert set(delivery) == {"success", "discard", "retry"}
    assert set(_schema(served, "Retry")["properties"]) == {"initial", "max", "giveUpAfter"}
    assert set(_schema(served, "Content")["properties"]) == {"document", "envelope"}
    assert "secret" not in _schema(served, "Subscription")["properties"]


def test_request_examples_match_their_schemas(served: dict) -> None:
    """The examples shown in /docs are bodies the schemas accept."""
    from jsonschema import Draft202012Validator

    for path, method in (("/resources", "post"), ("/resources/{rid}/subscriptions", "post")):
        media = served["paths"][path][method]["requestBody"]["content"]["application/json"]
        schema = {**media["schema"], "components": served["components"]}
        Draft202012Validator(schema).validate(media["example"])


def test_operation_ids_are_unique(served: dict) -> None:
    ids = [op["operationId"] for _, _, op in _operations(served)]
    assert len(ids) == len(set(ids))


def test_docs_page(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '"/openapi.json"' in response.text


def test_docs_page_loads_nothing_from_elsewhere(client: TestClient) -> None:
    """The machines have no internet: every asset is local, and the validator badge is off."""
    page = client.get("/docs").text
    for ref in re.findall(r'(?:src|href)="([^"]+)"', page):
        assert ref.startswith("/"), ref
        assert not ref.startswith("//"), ref
    assert "validatorUrl: null" in page


def test_docs_assets_answer(client: TestClient) -> None:
    page = client.get("/docs").text
    refs = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert {"/docs/static/swagger-ui.css", "/docs/static/swagger-ui-bundle.js"} <= set(refs)
    types = {".css": "text/css", ".js": "javascript", ".png": "image/png"}
    for ref in refs:
        response = client.get(ref)
        assert response.status_code == 200, ref
        kind = next(v for k, v in types.items() if ref.endswith(k))
        assert kind in response.headers["content-type"], ref
        assert len(response.content) > 0


@pytest.mark.parametrize("name", ["index.html", "swagger-initializer.js", "index.j2",
                                  "../__init__.py", "missing.js"])
def test_only_the_page_assets_are_served(client: TestClient, name: str) -> None:
    """The package's own index and initializer point at the public petstore: hidden."""
    assert client.get(f"/docs/static/{name}").status_code == 404


def test_path_parameters_sit_on_operations(served: dict) -> None:
    """Swagger UI 5.31 renders referenced path-level parameters as a nameless `any`."""
    for path, item in served["paths"].items():
        assert "parameters" not in item, path
        names = set(re.findall(r"\{([^}]+)\}", path))
        for method in set(item) & HTTP_METHODS:
            refs = {p["$ref"].rsplit("/", 1)[1] for p in item[method].get("parameters", [])}
            assert names <= refs, (path, method)
