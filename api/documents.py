"""Documents routes (SPEC §8): the URL is the raw request target after ``/documents/``.

PUT and DELETE are validated here with the same pure checks the changes stage applies,
written to ``<prefix>.documents`` with acks=all, and answered 202 only after the broker's
acknowledgement. Concurrent requests share the producer's batches (one producer, linger).
GET reads the documents table of the process that owns the document's partition: locally,
or by asking the owner's API once (the changes group's assignor names that process,
streams/ownership.py).
"""

from __future__ import annotations

import httpx
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from api.body import read_asgi_body
from api.responses import json_response
from tables.documents import change_value, decode_document, match
from tables.errors import FlareError
from tables.resources import rfc3339
from tables.revisions import revision_of
from tables.urls import validate_document_url

PREFIX = b"/documents/"
FORWARDED = "x-flare-forwarded"


def document_url(scope: Scope) -> str:
    """Everything after ``/documents/`` in the raw target, query included (SPEC §8)."""
    raw = scope.get("raw_path") or scope["path"].encode()
    url = raw[len(PREFIX):].decode("utf-8", "replace")
    query = scope.get("query_string", b"")
    if query:
        url += "?" + query.decode("utf-8", "replace")
    return url


def _registry_ready(runtime) -> None:
    """Until the registry is read, "no resource matches" would be a wrong 404: say 503."""
    if not runtime.view.caught_up.is_set():
        raise FlareError(503, "service unavailable", "the stream processor is still starting")


def internal_headers(settings) -> dict[str, str]:
    """What one Flare process sends another: the forwarded mark, and the first configured
    token when tokens are set (the owner checks it like any client's, SPEC §2)."""
    headers = {FORWARDED: "1"}
    if settings.internal_token:
        headers["Authorization"] = f"Bearer {settings.internal_token}"
    return headers


def _not_found(url: str) -> FlareError:
    return FlareError(404, "error during document search", f"document '{url}' not found")


async def get_document(request: Request, url: str) -> Response:
    validate_document_url(url)  # SPEC §8: 400 `invalid id` before looking for it
    runtime = request.app.state.runtime
    if FORWARDED not in request.headers:
        owner = runtime.changes.owner_of(url)
        if owner and owner.rstrip("/") != runtime.settings.canonical_url:
            try:
                answer = await runtime.http.get(f"{owner.rstrip('/')}/documents/{url}",
                                                headers=internal_headers(runtime.settings))
            except httpx.HTTPError as exc:  # an owner that does not answer is no 500
                raise FlareError(503, "service unavailable",
                                 f"the process that owns this document ({owner.rstrip('/')}) "
                                 f"did not answer: {exc.__class__.__name__}") from None
            return Response(answer.content, status_code=answer.status_code,
                            media_type="application/json")
    record = runtime.changes.local(url)
    if (record is None or record.get("deleted")
            or record["resource"] not in runtime.view.resources):
        raise _not_found(url)
    return json_response({"id": url, "content": record["content"],
                          "updatedAt": rfc3339(record["updatedAt"]),
                          "revision": record["revision"]})


async def put_document(runtime, url: str, body: bytes) -> None:
    # SPEC §8 order: the URL and its resource, then the body, then the revision.
    resource = match(url, runtime.view.resource_index())
    document = decode_document(body)
    revision_of(document, resource.field, resource.format)
    await runtime.write_change(url, change_value("put", url, document))


async def delete_document(runtime, url: str) -> None:
    match(url, runtime.view.resource_index())
    await runtime.write_change(url, change_value("delete", url))


ACCEPTED_START = {"type": "http.response.start", "status": 202,
                  "headers": [(b"content-length", b"0")]}
ACCEPTED_BODY = {"type": "http.response.body", "body": b""}


class Documents:
    """The ``/documents/...`` endpoint as a plain ASGI app.

    Nearly every request Flare gets is a PUT here, so PUT and DELETE skip Starlette's
    Request and Response objects: the body is read from ``receive`` (with the 413 limit of
    api/body.py) and the 202 is two messages. A FlareError raised here becomes the JSON
    error as anywhere else (Starlette's exception middleware, api/errors.py). GET goes
    through a Request as usual.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime = scope["app"].state.runtime
        url = document_url(scope)
        method = scope["method"]
        if method in ("GET", "HEAD"):
            response = await get_document(Request(scope, receive), url)
            await response(scope, receive, send)
            return
        _registry_ready(runtime)
        if method == "PUT":
            try:
                body = await read_asgi_body(scope, receive, runtime.settings.max_body_bytes)
            except ClientDisconnect:
                return  # nobody to answer; nothing was written
            await put_document(runtime, url, body)
        else:
            await delete_document(runtime, url)
        await send(ACCEPTED_START)
        await send(ACCEPTED_BODY)


routes = [Route("/documents/{url:path}", Documents(), methods=["GET", "PUT", "DELETE"])]
