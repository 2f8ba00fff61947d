"""Documents routes (SPEC §8): the URL is the raw request target after ``/documents/``.

PUT and DELETE are validated here with the same pure checks the changes stage applies,
written to ``<prefix>.documents`` with acks=all, and answered 202 only after the broker's
acknowledgement. Concurrent requests share the producer's batches (one producer, linger).
GET reads the documents table of the process that owns the document's partition: locally,
or by asking the owner's API once (the changes group's assignor names that process,
streams/ownership.py).
"""

from __future__ import annotations


from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.body import read_body
from api.responses import json_response
from tables.documents import change_value, decode_document, match
from tables.errors import FlareError
from tables.resources import rfc3339
from tables.revisions import revision_of

PREFIX = b"/documents/"
FORWARDED = "x-flare-forwarded"


def document_url(request: Request) -> str:
    """Everything after ``/documents/`` in the raw target, query included (SPEC §8)."""
    raw = request.scope.get("raw_path") or request.scope["path"].encode()
    url = raw[len(PREFIX):].decode("utf-8", "replace")
    query = request.scope.get("query_string", b"")
    if query:
        url += "?" + query.decode("utf-8", "replace")
    return url


def _registry_ready(request: Request) -> None:
    """Until the registry is read, "no resource matches" would be a wrong 404: say 503."""
    if not request.app.state.runtime.view.caught_up.is_set():
        raise FlareError(503, "service unavailable", "the stream processor is still starting")


def _not_found(url: str) -> FlareError:
    return FlareError(404, "error during document search", f"document '{url}' not found")


async def get_document(request: Request, url: str) -> Response:
    runtime = request.app.state.runtime
    if FORWARDED not in request.headers:
        owner = runtime.changes.owner_of(url)
        if owner and owner.rstrip("/") != runtime.settings.canonical_url:
            answer = await runtime.http.get(f"{owner.rstrip('/')}/documents/{url}",
                                            headers={FORWARDED: "1"})
            return Response(answer.content, status_code=answer.status_code,
                            media_type="application/json")
    record = runtime.changes.local(url)
    if record is None or record["resource"] not in runtime.view.resources:
        raise _not_found(url)
    return json_response({"id": url, "content": record["content"],
                          "updatedAt": rfc3339(record["updatedAt"]),
                          "revision": record["revision"]})


async def put_document(request: Request, url: str) -> Response:
    runtime = request.app.state.runtime
    # SPEC §8 order: the URL and its resource, then the body, then the revision.
    resource = match(url, runtime.view.resource_index())
    document = decode_document(await read_body(request))
    revision_of(document, resource.field, resource.format)
    await runtime.write_change(url, change_value("put", url, document))
    return Response(status_code=202)


async def delete_document(request: Request, url: str) -> Response:
    runtime = request.app.state.runtime
    match(url, runtime.view.resource_index())
    await runtime.write_change(url, change_value("delete", url))
    return Response(status_code=202)


async def document(request: Request) -> Response:
    url = document_url(request)
    if request.method != "GET":
        _registry_ready(request)
    if request.method == "PUT":
        return await put_document(request, url)
    if request.method == "DELETE":
        return await delete_document(request, url)
    return await get_document(request, url)


routes = [Route("/documents/{url:path}", document, methods=["GET", "PUT", "DELETE"])]
