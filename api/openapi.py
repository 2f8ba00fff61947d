"""The API described (SPEC §11): an OpenAPI 3.1 document at /openapi.json, browsable at /docs.

The document is a plain structure built once at import and encoded once with orjson. /docs is
Swagger UI, served from the files of the ``swagger-ui-bundle-v2`` package (the machines have
no internet at run time, so no CDN); only the assets the page needs are served.

When a route, a body field or a status code of SPEC §3-§9 changes, change it here too:
tests/unit/test_openapi.py checks that every route of the app is described.
"""

from __future__ import annotations

import os
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from api.pagination import DEFAULT_LIMIT, MAX_LIMIT
from app import __version__

JSON = "application/json"
ACTIONS = ("create", "update", "delete")


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], example: Any = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {JSON: media}


def _ok(description: str, schema_name: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": _json(_ref(schema_name)), **extra}


def _error(description: str, title: str, detail: str) -> dict[str, Any]:
    """An error answer: SPEC §2's body; the description names the titles this route uses."""
    example = {"error": {"title": title, "detail": detail}}
    return {"description": description, "content": _json(_ref("Error"), example)}


def _no_body(description: str) -> dict[str, Any]:
    return {"description": description}


def _created(description: str, schema_name: str, location: str) -> dict[str, Any]:
    return _ok(description, schema_name, headers={"Location": {
        "description": f"Where the new object is: `{location}`.",
        "schema": {"type": "string"},
    }})


UNAUTHORIZED = {"$ref": "#/components/responses/Unauthorized"}
TOO_LARGE = {"$ref": "#/components/responses/TooLarge"}
PAGINATION_ERROR = _error(
    "`error during pagination parse` (offset or limit not an integer) or `invalid pagination`"
    " (negative offset, negative limit or limit over 1000). Offset is checked first.",
    "invalid pagination", "invalid limit '5000'",
)


def _parameters() -> dict[str, Any]:
    return {
        "offset": {
            "name": "offset", "in": "query", "required": False,
            "description": "How many items to skip (decimal integer, optional sign).",
            "schema": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1, "default": 0},
        },
        "limit": {
            "name": "limit", "in": "query", "required": False,
            "description": f"How many items at most (decimal integer, at most {MAX_LIMIT}).",
            "schema": {"type": "integer", "minimum": 0, "maximum": MAX_LIMIT,
                       "default": DEFAULT_LIMIT},
        },
        "token": {
            "name": "token", "in": "query", "required": False,
            "description": "An API token: signs in to the dashboard at once.",
            "schema": {"type": "string"},
        },
        "rid": {
            "name": "rid", "in": "path", "required": True,
            "description": "The resource id.",
            "schema": {"type": "string", "format": "uuid"},
        },
        "sid": {
            "name": "sid", "in": "path", "required": True,
            "description": "The subscription id.",
            "schema": {"type": "string", "format": "uuid"},
        },
        "url": {
            "name": "url", "in": "path", "required": True,
            "description": (
                "The document URL, written as it is after `/documents/` (not percent-encoded),"
                " e.g. `PUT /documents/http://api.company.com/users/123`: Flare reads the raw"
                " request target (SPEC §8). Tools that encode path parameters (this page's"
                " *Try it out* does) send a URL Flare cannot match: use curl or an HTTP client."
            ),
            "schema": {"type": "string"},
            "example": "http://api.company.com/users/123",
        },
        "state": {
            "name": "state", "in": "query", "required": False,
            "description": "Only deliveries in this state: waiting or retrying (`pending`),"
                           " or parked after `delivery.retry.giveUpAfter` (`dead`).",
            "schema": {"type": "string", "enum": ["pending", "dead"]},
        },
    }


def _param(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/parameters/{name}"}


def _schemas() -> dict[str, Any]:
    headers = {
        "type": "object",
        "description": "Header name → values; names are kept as sent.",
        "additionalProperties": {"type": "array", "items": {"type": "string"}},
        "example": {"Authorization": ["Basic dXNlcjpwYXNz"]},
    }
    method_in = {
        "type": "string",
        "description": "GET, POST, PUT, PATCH or DELETE, in any case (upper-cased). Empty: GET,"
                       " or the action's method.",
        "example": "post",
    }
    url_in = {
        "type": "string",
        "description": "Absolute http(s) URL; may hold the resource's `{wildcards}`, filled"
                       " from the document URL when sending (SPEC §9.2).",
        "example": "http://client/wishlist/{id}",
    }
    scalar = {"type": ["string", "number", "boolean"]}
    return {
        "Error": {
            "type": "object",
            "description": "SPEC §2. `title` is exact and stable; `detail` carries ids, values"
                           " and the rule broken. `status` is only in the unknown-route (404)"
                           " and wrong-method (405) bodies, which have no `detail`.",
            "required": ["error"],
            "properties": {"error": {
                "type": "object",
                "required": ["title"],
                "properties": {
                    "status": {"type": "integer"},
                    "title": {"type": "string"},
                    "detail": {"type": "string"},
                },
            }},
        },
        "Pagination": {
            "type": "object",
            "required": ["limit", "offset", "total"],
            "properties": {
                "limit": {"type": "integer", "minimum": 0, "maximum": MAX_LIMIT},
                "offset": {"type": "integer", "minimum": 0},
                "total": {"type": "integer", "minimum": 0,
                          "description": "How many items exist in all."},
            },
        },
        "Change": {
            "type": "object",
            "required": ["field"],
            "properties": {
                "field": {"type": "string", "minLength": 1,
                          "description": "Top-level document field that carries its version."},
                "format": {"type": "string",
                           "description": "When `field` is a date: a Go reference layout, e.g."
                                          " `2006-01-02T15:04:05Z07:00`. Left out when empty.",
                           "example": "2006-01-02T15:04:05Z07:00"},
            },
        },
        "ResourceCreate": {
            "type": "object",
            "description": "SPEC §5. Unknown fields and `id` are ignored.",
            "required": ["endpoint", "change"],
            "properties": {
                "endpoint": {
                    "type": "string",
                    "description": "http(s) URL template with at least one `{wildcard}`, each"
                                   " alone in its path segment; no user, query or fragment.",
                    "example": "http://api.company.com/users/{id}",
                },
                "change": _ref("Change"),
            },
        },
        "Resource": {
            "type": "object",
            "required": ["id", "endpoint", "change", "createdAt"],
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "endpoint": {"type": "string", "example": "http://api.company.com/users/{id}"},
                "change": _ref("Change"),
                "createdAt": {"type": "string", "format": "date-time",
                              "example": "2024-05-01T12:00:00Z"},
            },
        },
        "ResourceList": {
            "type": "object",
            "required": ["pagination", "resources"],
            "properties": {
                "pagination": _ref("Pagination"),
                "resources": {"type": "array", "items": _ref("Resource")},
            },
        },
        "Headers": headers,
        "ActionCreate": {
            "type": "object",
            "description": "Overrides for one action; `headers` replace (not merge) the"
                           " endpoint's headers.",
            "properties": {"url": url_in, "method": method_in, "headers": _ref("Headers")},
        },
        "EndpointCreate": {
            "type": "object",
            "description": "`url` may be left out only when every action has its own url.",
            "properties": {
                "url": url_in,
                "method": method_in,
                "headers": _ref("Headers"),
                "actions": {
                    "type": "object",
                    "properties": {a: _ref("ActionCreate") for a in ACTIONS},
                    "additionalProperties": False,
                },
            },
        },
        "Retry": {
            "type": "object",
            "description": "Backoff override in seconds (SPEC §9.6). Past `giveUpAfter` a"
                           " delivery is parked as dead (listable, re-drivable).",
            "properties": {
                "initial": {"type": "number", "exclusiveMinimum": 0, "example": 1},
                "max": {"type": "number", "exclusiveMinimum": 0, "example": 300},
                "giveUpAfter": {"type": "number", "exclusiveMinimum": 0, "example": 86400},
            },
        },
        "DeliveryPolicy": {
            "type": "object",
            "description": "Statuses meaning delivered / discarded; anything else is retried.",
            "required": ["success", "discard"],
            "properties": {
                "success": {"type": "array", "minItems": 1, "items": {"type": "integer"},
                            "example": [200]},
                "discard": {"type": "array", "minItems": 1, "items": {"type": "integer"},
                            "example": [500]},
                "retry": _ref("Retry"),
            },
        },
        "Content": {
            "type": "object",
            "properties": {
                "document": {"type": "boolean", "default": True,
                             "description": "Include the document in the envelope."},
                "envelope": {"type": "boolean", "default": True,
                             "description": "Wrap the document in `{id, action, updatedAt,"
                                            " data, document}`; false sends the document"
                                            " itself."},
            },
        },
        "Data": {
            "type": "object",
            "description": "Sent as the envelope's `data` (needs `content.envelope`). String"
                           " values may hold the resource's `{wildcards}` and `{revision}`.",
            "additionalProperties": {"oneOf": [scalar, {"type": "array", "items": scalar}]},
            "example": {"service": "user", "id": "{id}"},
        },
        "SubscriptionCreate": {
            "type": "object",
            "description": "SPEC §7 and §9.6. Unknown fields and `id` are ignored.",
            "required": ["endpoint", "delivery"],
            "properties": {
                "endpoint": _ref("EndpointCreate"),
                "delivery": _ref("DeliveryPolicy"),
                "content": _ref("Content"),
                "data": _ref("Data"),
                "secret": {
                    "type": "string", "writeOnly": True,
                    "pattern": "^whsec_[A-Za-z0-9+/]+={0,2}$",
                    "description": "`whsec_` + base64 of 24-64 bytes: requests are then signed"
                                   " (`webhook-signature`, Standard Webhooks). Never returned.",
                },
            },
        },
        "Action": {
            "type": "object",
            "properties": {
                "url": {"type": "string"},
                "method": {"type": "string", "enum": ["GET", "POST", "PUT", "PATCH", "DELETE"]},
                "headers": _ref("Headers"),
            },
        },
        "Endpoint": {
            "type": "object",
            "description": "Empty parts are left out.",
            "properties": {
                "url": {"type": "string"},
                "method": {"type": "string", "enum": ["GET", "POST", "PUT", "PATCH", "DELETE"]},
                "headers": _ref("Headers"),
                "actions": {"type": "object",
                            "properties": {a: _ref("Action") for a in ACTIONS}},
            },
        },
        "Subscription": {
            "type": "object",
            "description": "`data` and `delivery.retry` appear only when set; the secret never.",
            "required": ["id", "endpoint", "delivery", "content", "createdAt"],
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "endpoint": _ref("Endpoint"),
                "delivery": _ref("DeliveryPolicy"),
                "content": {
                    "type": "object", "required": ["document", "envelope"],
                    "properties": {"document": {"type": "boolean"},
                                   "envelope": {"type": "boolean"}},
                },
                "data": _ref("Data"),
                "createdAt": {"type": "string", "format": "date-time"},
            },
        },
        "SubscriptionList": {
            "type": "object",
            "required": ["pagination", "subscriptions"],
            "properties": {
                "pagination": _ref("Pagination"),
                "subscriptions": {"type": "array", "items": _ref("Subscription")},
            },
        },
        "DocumentBody": {
            "type": "object",
            "description": "Any JSON object. Its revision is the resource's top-level"
                           " `change.field`: a number (integer part) or a date string in"
                           " `change.format`.",
            "additionalProperties": True,
            "example": {"id": 123, "name": "Ann", "updatedAt": "2010-12-10T08:35:08.008Z"},
        },
        "Document": {
            "type": "object",
            "required": ["id", "content", "updatedAt", "revision"],
            "properties": {
                "id": {"type": "string", "description": "The document URL."},
                "content": {"type": "object", "additionalProperties": True},
                "updatedAt": {"type": "string", "format": "date-time"},
                "revision": {"type": "integer", "format": "int64",
                             "description": "A number's integer part, or a date in Unix"
                                            " nanoseconds."},
            },
        },
        "Delivery": {
            "type": "object",
            "description": "What one subscriber is still owed for one document (SPEC §9.4:"
                           " at most one per document).",
            "properties": {
                "document": {"type": "string", "description": "The document URL."},
                "state": {"type": "string", "enum": ["pending", "dead"]},
                "action": {"type": "string", "enum": list(ACTIONS)},
                "revision": {"type": ["integer", "null"], "format": "int64"},
                "attempt": {"type": "integer", "minimum": 0,
                            "description": "Failed attempts of the current streak."},
                "lastStatus": {"type": ["integer", "null"],
                               "description": "Status of the last attempt; null after a"
                                              " transport error or timeout."},
                "nextAttemptAt": {"type": ["string", "null"], "format": "date-time"},
            },
        },
        "DeliveryList": {
            "type": "object",
            "required": ["deliveries"],
            "properties": {
                "deliveries": {"type": "array", "items": _ref("Delivery")},
                "unanswered": {"type": "array", "items": {"type": "string"},
                               "description": "Flare processes that did not answer: their"
                                              " deliveries are missing from the list."},
            },
        },
        "Version": {
            "type": "object",
            "required": ["version", "python"],
            "properties": {"version": {"type": "string"}, "python": {"type": "string"}},
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"type": "string"},
                           "reason": {"type": ["string", "null"]}},
        },
    }


def _resource_paths() -> dict[str, Any]:
    return {
        "/resources": {
            "get": {
                "tags": ["resources"], "operationId": "listResources",
                "summary": "List resources",
                "description": "In creation order, `items[offset:offset+limit]` (SPEC §4).",
                "parameters": [_param("offset"), _param("limit")],
                "responses": {"200": _ok("A page of resources.", "ResourceList"),
                              "400": PAGINATION_ERROR, "401": UNAUTHORIZED},
            },
            "post": {
                "tags": ["resources"], "operationId": "createResource",
                "summary": "Create a resource",
                "description": "SPEC §5; resources are immutable (created and deleted only).",
                "requestBody": {"required": True, "content": _json(
                    _ref("ResourceCreate"),
                    {"endpoint": "http://api.company.com/users/{id}",
                     "change": {"field": "updatedAt", "format": "2006-01-02T15:04:05Z07:00"}},
                )},
                "responses": {
                    "201": _created("Created.", "Resource", "/resources/<id>"),
                    "400": _error("`error during body parse` (not a JSON object, wrong type),"
                                  " `error during content unescape` or `invalid body content`"
                                  " (endpoint rules, wildcards, missing change field).",
                                  "invalid body content", "invalid endpoint: missing wildcard"),
                    "401": UNAUTHORIZED,
                    "409": _error("`error during resource create`: another resource has the"
                                  " same scheme, host and path shape.",
                                  "error during resource create",
                                  "endpoint already associated to another resource '<id>'"),
                    "413": TOO_LARGE,
                },
            },
        },
        "/resources/{rid}": {
            "parameters": [_param("rid")],
            "get": {
                "tags": ["resources"], "operationId": "getResource", "summary": "Get a resource",
                "responses": {
                    "200": _ok("The resource.", "Resource"),
                    "401": UNAUTHORIZED,
                    "404": _error("`error during resource search`.",
                                  "error during resource search", "resource '<id>' not found"),
                },
            },
            "delete": {
                "tags": ["resources"], "operationId": "deleteResource",
                "summary": "Delete a resource",
                "description": "Its stored documents are removed soon after.",
                "responses": {
                    "204": _no_body("Deleted."),
                    "401": UNAUTHORIZED,
                    "404": _error("`error during resource delete`: unknown resource.",
                                  "error during resource delete", "resource '<id>' not found"),
                    "409": _error("`error during resource delete`: it still has subscriptions.",
                                  "error during resource delete",
                                  "there are subscriptions associated with this resource '<id>'"),
                },
            },
        },
    }


def _subscription_paths() -> dict[str, Any]:
    not_found = _error("`error during subscription search`: unknown here.",
                       "error during subscription search",
                       "subscription '<id>' at resource '<rid>', not found")
    return {
        "/resources/{rid}/subscriptions": {
            "parameters": [_param("rid")],
            "get": {
                "tags": ["subscriptions"], "operationId": "listSubscriptions",
                "summary": "List a resource's subscriptions",
                "description": "In creation order (SPEC §4); an unknown resource has none.",
                "parameters": [_param("offset"), _param("limit")],
                "responses": {"200": _ok("A page of subscriptions.", "SubscriptionList"),
                              "400": PAGINATION_ERROR, "401": UNAUTHORIZED},
            },
            "post": {
                "tags": ["subscriptions"], "operationId": "createSubscription",
                "summary": "Subscribe a client to a resource",
                "description": "SPEC §7. Methods are upper-cased; `content.document` and"
                               " `content.envelope` default to true.",
                "requestBody": {"required": True, "content": _json(
                    _ref("SubscriptionCreate"),
                    {"endpoint": {"url": "http://client/wishlist/{id}", "method": "post",
                                  "headers": {"Authorization": ["Basic dXNlcjpwYXNz"]},
                                  "actions": {"delete": {"method": "delete"}}},
                     "delivery": {"success": [200], "discard": [500]},
                     "content": {"envelope": True, "document": True},
                     "data": {"service": "user", "id": "{id}"}},
                )},
                "responses": {
                    "201": _created("Created.", "Subscription",
                                    "/resources/<rid>/subscriptions/<id>"),
                    "400": _error("`error during body parse`: undecodable body, bad escape, or"
                                  " `invalid body content: <rule>` (urls, wildcards, methods,"
                                  " delivery statuses, data, secret, public address).",
                                  "error during body parse",
                                  "invalid body content: missing delivery.Success"),
                    "401": UNAUTHORIZED,
                    "404": _error("`error during resource search`: unknown resource.",
                                  "error during resource search", "resource '<rid>' not found"),
                    "409": _error("`error during subscription create`: a url is already used"
                                  " by another subscription of the resource.",
                                  "error during subscription create",
                                  "already exists a subscription '<id>' with the endpoint.URL"
                                  " '<url>'"),
                    "413": TOO_LARGE,
                },
            },
        },
        "/resources/{rid}/subscriptions/{sid}": {
            "parameters": [_param("rid"), _param("sid")],
            "get": {
                "tags": ["subscriptions"], "operationId": "getSubscription",
                "summary": "Get a subscription",
                "responses": {"200": _ok("The subscription.", "Subscription"),
                              "401": UNAUTHORIZED, "404": not_found},
            },
            "delete": {
                "tags": ["subscriptions"], "operationId": "deleteSubscription",
                "summary": "Delete a subscription",
                "description": "Its delivery records and pending deliveries are dropped.",
                "responses": {
                    "204": _no_body("Deleted."),
                    "401": UNAUTHORIZED,
                    "404": _error("`error during subscription delete`.",
                                  "error during subscription delete",
                                  "subscription '<id>' at resource '<rid>', not found"),
                },
            },
        },
        "/resources/{rid}/subscriptions/{sid}/deliveries": {
            "parameters": [_param("rid"), _param("sid")],
            "get": {
                "tags": ["deliveries"], "operationId": "listDeliveries",
                "summary": "List deliveries still owed to a subscriber",
                "description": "Pending (waiting or retrying) and dead (parked) deliveries"
                               " (SPEC §9.6).",
                "parameters": [_param("state")],
                "responses": {"200": _ok("The deliveries.", "DeliveryList"),
                              "401": UNAUTHORIZED, "404": not_found},
            },
        },
        "/resources/{rid}/subscriptions/{sid}/deliveries/redrive": {
            "parameters": [_param("rid"), _param("sid")],
            "post": {
                "tags": ["deliveries"], "operationId": "redriveDeliveries",
                "summary": "Send dead deliveries again",
                "description": "Every dead delivery of the subscription waits again, due now,"
                               " with a fresh attempt count.",
                "responses": {"202": _no_body("Accepted: dead deliveries are sent again."),
                              "401": UNAUTHORIZED, "404": not_found,
                              "503": _error("Another Flare process did not answer.",
                                            "service unavailable",
                                            "redrive asked here, but these processes did not"
                                            " answer: <urls>")},
            },
        },
        "/resources/{rid}/subscriptions/{sid}/backfill": {
            "parameters": [_param("rid"), _param("sid")],
            "post": {
                "tags": ["deliveries"], "operationId": "backfillSubscription",
                "summary": "Offer every live document of the resource to the subscription",
                "description": "SPEC §11: the current revision of every live document of the"
                               " resource is offered to the subscription as `create`, through"
                               " the dispatcher (revisions it already has are skipped; order,"
                               " coalescing and retries as for any change). 202 once every"
                               " offer is in Kafka, on every Flare process; `offered` counts"
                               " them. `flare backfill` does the same.",
                "responses": {
                    "202": {"description": "Accepted: every offer is in Kafka.",
                            "content": _json({"type": "object", "required": ["offered"],
                                              "properties": {"offered": {"type": "integer"}}},
                                             {"offered": 42})},
                    "401": UNAUTHORIZED,
                    "404": _error("`error during resource search` (unknown resource) or"
                                  " `error during subscription search` (unknown"
                                  " subscription of the resource).",
                                  "error during subscription search",
                                  "subscription '<id>' at resource '<rid>', not found"),
                    "503": _error("`error during backfill`: a Flare process did not answer,"
                                  " a documents partition has no owner now (a rebalance), or"
                                  " Kafka did not acknowledge; `service unavailable` while"
                                  " starting. Nothing is lost by trying again.",
                                  "error during backfill",
                                  "member http://10.0.0.2:8080 did not answer: ..."),
                },
            },
        },
    }


def _document_paths() -> dict[str, Any]:
    invalid_id = ("`invalid id` (the document URL: opaque, user, missing host or path, query,"
                  " fragment, scheme)")
    no_resource = _error("`error during resource search`: no resource matches the URL.",
                         "error during resource search",
                         "could not found a resource for this uri '<url>'")
    return {"/documents/{url}": {
        "parameters": [_param("url")],
        "get": {
            "tags": ["documents"], "operationId": "getDocument",
            "summary": "Get the latest stored revision of a document",
            "responses": {
                "200": _ok("The document.", "Document"),
                "401": UNAUTHORIZED,
                "404": _error("`error during document search`: unknown or deleted.",
                              "error during document search", "document '<url>' not found"),
                "503": _error("The Flare process that owns the document did not answer.",
                              "service unavailable",
                              "the process that owns this document (<url>) did not answer"),
            },
        },
        "put": {
            "tags": ["documents"], "operationId": "putDocument",
            "summary": "Publish a document",
            "description": "Written to Kafka (acks=all) before the answer; subscribers are told"
                           " what they are missing (SPEC §8, §9). An older revision never"
                           " overwrites a newer stored one.",
            "requestBody": {"required": True, "content": _json(_ref("DocumentBody"))},
            "responses": {
                "202": _no_body("Accepted and durably stored."),
                "400": _error(f"{invalid_id}, or `invalid body` (not a JSON object, missing or"
                              " unparsable revision).",
                              "invalid body", "data type not supported"),
                "401": UNAUTHORIZED,
                "404": no_resource,
                "413": TOO_LARGE,
            },
        },
        "delete": {
            "tags": ["documents"], "operationId": "deleteDocument",
            "summary": "Delete a document",
            "description": "Subscribers that hold it receive a `delete`.",
            "responses": {
                "202": _no_body("Accepted and durably stored."),
                "400": _error(f"{invalid_id}.", "invalid id", "missing host"),
                "401": UNAUTHORIZED,
                "404": no_resource,
            },
        },
    }}


def _operation_paths() -> dict[str, Any]:
    def page(operation_id: str, summary: str, media: str, secured: bool = True) -> dict:
        op: dict[str, Any] = {
            "tags": ["operations"], "operationId": operation_id, "summary": summary,
            "responses": {"200": {"description": "OK.",
                                  "content": {media: {"schema": {"type": "string"}}}}},
        }
        if secured:
            op["responses"]["401"] = UNAUTHORIZED
        else:
            op["security"] = []
        return {"get": op}

    health = {"description": "Alive.", "content": _json(_ref("Health"), {"status": "ok"})}
    return {
        "/": {"get": {
            "tags": ["operations"], "operationId": "version", "summary": "Version",
            "responses": {"200": _ok("Flare's and Python's versions.", "Version"),
                          "401": UNAUTHORIZED},
        }},
        "/healthz": {"get": {
            "tags": ["operations"], "operationId": "healthz",
            "summary": "Liveness: the process is alive", "security": [],
            "responses": {"200": health},
        }},
        "/readyz": {"get": {
            "tags": ["operations"], "operationId": "readyz",
            "summary": "Readiness: partitions assigned, tables recovered, broker reachable",
            "security": [],
            "responses": {
                "200": {"description": "Ready.", "content": _json(_ref("Health"))},
                "503": {"description": "Not ready; `reason` says why.",
                        "content": _json(_ref("Health"))},
            },
        }},
        "/metrics": page("metrics", "Prometheus metrics",
                         "text/plain; version=0.0.4; charset=utf-8", secured=False),
        "/openapi.json": {"get": {
            "tags": ["operations"], "operationId": "openapi", "summary": "This document",
            "responses": {"200": {"description": "OpenAPI 3.1.",
                                  "content": {JSON: {"schema": {"type": "object"}}}},
                          "401": UNAUTHORIZED},
        }},
        "/docs": page("docs", "This document, browsable", "text/html"),
        **_ui_paths(),
    }


def _ui_paths() -> dict[str, Any]:
    """The dashboard (api/ui.py): pages for a browser. With API tokens set they take the
    token from the ``flare_token`` cookie that ``/ui/login`` sets, not from a header."""
    cookie = [{"uiCookie": []}]
    to_login = {"description": "No valid token cookie: to `/ui/login`.",
                "headers": {"Location": {"schema": {"type": "string"}}}}
    html_page = {"content": {"text/html": {"schema": {"type": "string"}}}}
    sid, rid = _param("sid"), _param("rid")
    return {
        "/ui": {"get": {
            "tags": ["operations"], "operationId": "ui", "security": cookie,
            "summary": "Dashboard of resources, subscriptions and delivery health",
            "description": "Server-rendered; reloads itself every 5 s.",
            "responses": {"200": {"description": "The page.", **html_page}, "303": to_login},
        }},
        "/ui/login": {
            "get": {"tags": ["operations"], "operationId": "uiLoginPage", "security": [],
                    "summary": "The dashboard's sign-in form; with `?token=` signs in at once",
                    "parameters": [_param("token")],
                    "responses": {"200": {"description": "The form.", **html_page},
                                  "303": {"description": "Signed in: the cookie is set, to"
                                                         " `/ui`."},
                                  "401": {"description": "Wrong token.", **html_page}}},
            "post": {"tags": ["operations"], "operationId": "uiLogin", "security": [],
                     "summary": "Sign in to the dashboard with an API token",
                     "requestBody": {"required": True, "content": {
                         "application/x-www-form-urlencoded": {"schema": {
                             "type": "object", "properties": {"token": {"type": "string"}}}}}},
                     "responses": {"303": {"description": "Signed in: the cookie is set, to"
                                                          " `/ui`."},
                                   "401": {"description": "Wrong token.", **html_page}}},
        },
        "/ui/redrive/{rid}/{sid}": {"post": {
            "tags": ["operations"], "operationId": "uiRedrive", "security": cookie,
            "summary": "The dashboard's redrive button: dead deliveries are sent again",
            "parameters": [rid, sid],
            "responses": {"303": {"description": "Done (or no such subscription): back to"
                                                 " `/ui`, or to `/ui/login` without a valid"
                                                 " cookie."}},
        }},
        "/ui/health/{sid}": {"get": {
            "tags": ["operations"], "operationId": "uiHealth", "security": cookie,
            "summary": "One subscription's delivery counts on this process (for the dashboard)",
            "parameters": [sid],
            "responses": {"200": {"description": "Counts.",
                                  "content": _json({"type": "object"})},
                          "401": {"description": "No valid token cookie."}},
        }},
    }


def _push_down_path_parameters(paths: dict[str, Any]) -> dict[str, Any]:
    """Move path-level parameters into each operation: Swagger UI 5.31 shows a referenced
    path-level parameter as a nameless ``any`` with OpenAPI 3.1 (operation-level ones work)."""
    out = {}
    for path, item in paths.items():
        shared = item.get("parameters", [])
        out[path] = {
            key: {**op, "parameters": shared + op.get("parameters", [])}
            for key, op in item.items() if key != "parameters"
        } if shared else item
    return out


def build_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of SPEC §2-§11."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Flare",
            "version": __version__,
            "summary": "Change notifications for documents.",
            "description": (
                "Origins publish documents; Flare tells subscribed clients over HTTP what"
                " really changed, sending each only the revisions it is missing.\n\n"
                "Conventions (SPEC §2): JSON bodies; errors are"
                " `{\"error\": {\"title\", \"detail\"}}` with stable titles. An unknown route"
                " answers 404, a wrong method on a known route 405 with an `Allow` header"
                " (`components.responses.NotFound` and `MethodNotAllowed`). One trailing `/` is"
                " ignored. Bodies over the configured limit (default 1 MiB) answer 413. When"
                " API tokens are configured, every route except `/healthz`, `/readyz` and"
                " `/metrics` needs `Authorization: Bearer <token>`."
            ),
        },
        "tags": [
            {"name": "resources", "description": "Collections of documents (SPEC §5)."},
            {"name": "subscriptions", "description": "Where and how to tell a client (§7)."},
            {"name": "documents", "description": "Documents pushed by origins (§8)."},
            {"name": "deliveries", "description": "What a subscriber is still owed (§9.6)."},
            {"name": "operations", "description": "Probes, metrics and docs (§11)."},
        ],
        "security": [{"bearerAuth": []}],
        "paths": _push_down_path_parameters({
            **_operation_paths(), **_resource_paths(), **_subscription_paths(),
            **_document_paths(),
        }),
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http", "scheme": "bearer",
                    "description": "Required only when Flare is configured with API tokens.",
                },
                "uiCookie": {
                    "type": "apiKey", "in": "cookie", "name": "flare_token",
                    "description": "The dashboard's pages: an API token, set by /ui/login.",
                },
            },
            "parameters": _parameters(),
            "schemas": _schemas(),
            "responses": {
                "Unauthorized": {
                    "description": "`unauthorized`: missing or invalid bearer token.",
                    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
                    "content": _json(_ref("Error"), {"error": {
                        "title": "unauthorized", "detail": "missing bearer token"}}),
                },
                "TooLarge": {
                    "description": "`request entity too large`: the body is over the limit.",
                    "content": _json(_ref("Error"), {"error": {
                        "title": "request entity too large",
                        "detail": "the body is larger than 1048576 bytes"}}),
                },
                "NotFound": {
                    "description": "Unknown route.",
                    "content": _json(_ref("Error"),
                                     {"error": {"status": 404, "title": "not found"}}),
                },
                "MethodNotAllowed": {
                    "description": "Known route, wrong method.",
                    "headers": {"Allow": {"description": "The route's methods.",
                                          "schema": {"type": "string"}}},
                    "content": _json(_ref("Error"),
                                     {"error": {"status": 405, "title": "method not allowed"}}),
                },
            },
        },
    }


DOCUMENT = build_document()
_DOCUMENT_JSON = orjson.dumps(DOCUMENT)

STATIC = "/docs/static"
# Only what the page loads (and the source maps browsers' tools ask for); the package's
# index.html and swagger-initializer.js point at the public petstore, so they stay hidden.
ASSETS = frozenset({
    "swagger-ui.css", "swagger-ui.css.map", "swagger-ui-bundle.js",
    "swagger-ui-bundle.js.map", "favicon-32x32.png", "favicon-16x16.png",
})

_PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Flare API {__version__}</title>
  <link rel="stylesheet" href="{STATIC}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{STATIC}/favicon-32x32.png">
  <style>body {{ margin: 0; }}</style>
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{STATIC}/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{
      url: "/openapi.json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      persistAuthorization: true,
      validatorUrl: null,
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
    }});
  </script>
</body>
</html>
""".encode()


class _Assets(StaticFiles):
    """Static files limited to :data:`ASSETS`; anything else is a 404."""

    def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
        if path not in ASSETS:
            return "", None
        return super().lookup_path(path)


async def openapi_json(request: Request) -> Response:
    return Response(_DOCUMENT_JSON, media_type=JSON)


async def docs(request: Request) -> Response:
    return Response(_PAGE, media_type="text/html")


routes = [
    Route("/openapi.json", openapi_json, methods=["GET"]),
    Route("/docs", docs, methods=["GET"]),
    Mount(STATIC, app=_Assets(directory=str(swagger_ui_path)), name="docs-static"),
]
