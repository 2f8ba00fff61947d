"""The dashboard at ``/ui`` (SPEC §11): server-rendered HTML, no front-end build step.

Resources, their subscriptions and per subscription the pending and dead deliveries, the
last status seen and a redrive button; the stages' readiness, lag and table sizes. The page
reloads itself every few seconds.

With API tokens set, a browser cannot send ``Authorization`` on a page load, so the
``/ui`` paths check a cookie instead (api/middleware.py lets them through to here):
``/ui/login`` takes the token from a form (or ``?token=`` once), checks it and sets it as
an HttpOnly, SameSite=Strict cookie scoped to ``/ui``. SameSite=Strict keeps other sites'
forms from posting the redrive button with it.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import time
from collections import Counter
from typing import Any
from urllib.parse import parse_qs, quote

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from api.deliveries import FORWARDED
from app import __version__

COOKIE = "flare_token"
REFRESH_SECONDS = 5


def _authorized(request: Request, token: str | None) -> bool:
    tokens = request.app.state.settings.api_tokens
    if not tokens:
        return True
    return token is not None and any(hmac.compare_digest(token.encode(), t.encode())
                                     for t in tokens)


def _token(request: Request) -> str | None:
    return request.cookies.get(COOKIE)


def _to_login() -> Response:
    return RedirectResponse("/ui/login", status_code=303)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def subscription_health(tables: dict[int, Any], subscription_id: str) -> dict[str, Any]:
    """Pending, dead and delivered counts and the last statuses of one subscription's
    records in the local deliveries tables."""
    prefix = f"{subscription_id}|".encode()
    pending = dead = delivered = 0
    statuses: Counter[int] = Counter()
    latest: tuple[float, int | None] | None = None
    for table in list(tables.values()):
        for key, value in table.with_prefix(prefix):
            record = orjson.loads(value)
            if record.get("received") is not None:
                delivered += 1
            if record.get("pending") is not None:
                if record.get("dead"):
                    dead += 1
                else:
                    pending += 1
                if record.get("last_status") is not None:
                    statuses[record["last_status"]] += 1
            when = record.get("first_failure_at") or 0.0
            if record.get("last_status") is not None and (latest is None or when >= latest[0]):
                latest = (when, record["last_status"])
    return {"pending": pending, "dead": dead, "delivered": delivered,
            "failing": dict(statuses), "last": None if latest is None else latest[1]}


def _merge(into: dict[str, Any], other: dict[str, Any]) -> None:
    for key in ("pending", "dead", "delivered"):
        into[key] += other.get(key, 0)
    for status, count in other.get("failing", {}).items():
        into["failing"][int(status)] = into["failing"].get(int(status), 0) + count
    if into["last"] is None:
        into["last"] = other.get("last")


async def _health_everywhere(request: Request, subscription_id: str) -> dict[str, Any]:
    """The local tables, plus every other member of the dispatcher group once."""
    runtime = request.app.state.runtime
    health = subscription_health(runtime.dispatcher.tables, subscription_id)
    if FORWARDED in request.headers:
        return health
    me = runtime.settings.canonical_url
    others = [h.rstrip("/") for h in runtime.dispatcher.members() if h.rstrip("/") != me]
    if others:
        headers = {FORWARDED: "1"}
        token = _token(request)
        cookies = {COOKIE: token} if token else None
        calls = [runtime.http.get(f"{host}/ui/health/{quote(subscription_id)}", headers=headers,
                                  cookies=cookies) for host in others]
        for answer in await asyncio.gather(*calls, return_exceptions=True):
            if not isinstance(answer, Exception) and answer.status_code == 200:
                _merge(health, answer.json())
    return health


def _stage_rows(request: Request) -> str:
    runtime = request.app.state.runtime
    lag = request.app.state.metrics.collector.lag
    rows = []
    for name, table in (("changes", "documents"), ("dispatcher", "deliveries")):
        stage = getattr(runtime, name)
        why = stage.readiness()
        partitions = sorted(stage.tables)
        stage_lag = lag.get(name, {})
        rows.append(
            f"<tr><td>{name}</td><td class=\"{'ok' if why is None else 'bad'}\">"
            f"{'ready' if why is None else _e(why)}</td><td>{_e(partitions)}</td>"
            f"<td>{sum(stage_lag.values())}</td>"
            f"<td>{sum(len(t) for t in list(stage.tables.values()))} {table}</td></tr>")
    return "".join(rows)


async def _resource_sections(request: Request) -> str:
    view = request.app.state.runtime.view
    resources = sorted(view.resources.values(), key=lambda r: (r.created_at, r.id))
    if not resources:
        return "<p>No resources yet: <code>POST /resources</code>.</p>"
    sections = []
    for resource in resources:
        subscriptions = view.subscriptions_of(resource.id)
        healths = await asyncio.gather(*(_health_everywhere(request, s.id) for s in subscriptions))
        rows = []
        for sub, health in zip(subscriptions, healths):
            urls = ", ".join(sub.urls) or "(per action)"
            failing = ", ".join(f"{status} ×{count}" for status, count in sorted(health["failing"].items()))
            last = "—" if health["last"] is None else health["last"]
            redrive = (f"<form method=\"post\" class=\"redrive\" data-sid=\"{_e(sub.id)}\""
                       f" action=\"/ui/redrive/{_e(resource.id)}/{_e(sub.id)}\">"
                       f"<button type=\"submit\"{'' if health['dead'] else ' disabled'}>"
                       f"Redrive</button></form>")
            rows.append(
                f"<tr id=\"sub-{_e(sub.id)}\"><td><code>{_e(sub.id)}</code></td>"
                f"<td>{_e(sub.endpoint.method or 'GET')} {_e(urls)}</td>"
                f"<td class=\"num pending\">{health['pending']}</td>"
                f"<td class=\"num dead {'bad' if health['dead'] else ''}\">{health['dead']}</td>"
                f"<td class=\"num\">{health['delivered']}</td>"
                f"<td class=\"last\">{_e(last)}{' (' + _e(failing) + ')' if failing else ''}</td>"
                f"<td>{redrive}</td></tr>")
        body = ("<table><tr><th>subscription</th><th>endpoint</th><th>pending</th><th>dead</th>"
                "<th>delivered</th><th>last status (failing)</th><th></th></tr>"
                + "".join(rows) + "</table>") if rows else "<p>No subscriptions.</p>"
        sections.append(
            f"<section id=\"res-{_e(resource.id)}\"><h3>{_e(resource.endpoint)}</h3>"
            f"<p class=\"meta\">resource <code>{_e(resource.id)}</code>, revision field"
            f" <code>{_e(resource.field)}</code></p>{body}</section>")
    return "".join(sections)


STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; margin: 0 0 .2em; } h2 { font-size: 1.15em; margin-top: 1.4em; }
h3 { font-size: 1em; margin: 1em 0 .1em; font-family: monospace; }
table { border-collapse: collapse; margin: .4em 0; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; }
.ok { color: #17702f; } .bad { color: #b3261e; font-weight: bold; }
.meta { color: #666; margin: 0; } form { margin: 0; } code { font-size: .95em; }
"""


async def dashboard(request: Request) -> Response:
    if not _authorized(request, _token(request)):
        return _to_login()
    runtime = request.app.state.runtime
    await request.app.state.metrics.collector.refresh_lag()
    ready, reason = runtime.readiness()
    status = ("<span class=\"ok\">ready</span>" if ready
              else f"<span class=\"bad\">not ready: {_e(reason)}</span>")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Flare dashboard</title><style>{STYLE}</style>
<noscript><meta http-equiv="refresh" content="{REFRESH_SECONDS}"></noscript>
<script>setTimeout(function () {{ location.reload(); }}, {REFRESH_SECONDS * 1000});</script>
</head>
<body>
<h1>Flare dashboard</h1>
<p class="meta">Flare {_e(__version__)} at {_e(runtime.settings.canonical_url)} · {status} ·
refreshed {time.strftime('%H:%M:%S', time.gmtime())} UTC, every {REFRESH_SECONDS} s ·
<a href="/metrics">metrics</a> · <a href="/docs">API</a></p>
<h2>Stages</h2>
<table id="stages"><tr><th>stage</th><th>readiness</th><th>partitions here</th><th>lag</th>
<th>table</th></tr>{_stage_rows(request)}</table>
<h2>Resources and subscriptions</h2>
{await _resource_sections(request)}
</body></html>"""
    return HTMLResponse(page)


LOGIN = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Flare dashboard: sign in</title>
<style>{style}</style></head><body><h1>Flare dashboard</h1>{error}
<form method="post" action="/ui/login"><label>API token
<input type="password" name="token" autofocus></label> <button type="submit">Sign in</button>
</form></body></html>"""


def _signed_in(token: str) -> Response:
    response = RedirectResponse("/ui", status_code=303)
    response.set_cookie(COOKIE, token, path="/ui", httponly=True, samesite="strict")
    return response


async def login(request: Request) -> Response:
    if request.method == "POST":
        # Parsed here: Starlette's form() needs python-multipart, for one field.
        token = parse_qs((await request.body()).decode("utf-8", "replace")).get("token", [None])[0]
    else:
        token = request.query_params.get("token")
        if token is None:
            return HTMLResponse(LOGIN.format(style=STYLE, error=""))
    if not request.app.state.settings.api_tokens:
        return RedirectResponse("/ui", status_code=303)  # nothing to sign in to, no cookie
    # A token is printable ASCII (app/config.py checks the configured ones); anything else
    # is simply wrong, never a cookie value that cannot be sent (schemathesis found a 500).
    if token is not None and token.isascii() and token.isprintable() and _authorized(request, token):
        return _signed_in(token)
    return HTMLResponse(LOGIN.format(style=STYLE, error="<p class=\"bad\">Wrong token.</p>"),
                        status_code=401)


async def redrive(request: Request) -> Response:
    """The redrive button: the dead deliveries of the subscription are sent again (what
    ``POST .../deliveries/redrive`` does, on every process), then back to the page."""
    token = _token(request)
    if not _authorized(request, token):
        return _to_login()
    runtime = request.app.state.runtime
    rid, sid = request.path_params["rid"], request.path_params["sid"]
    sub = runtime.view.subscriptions.get(sid)
    if sub is not None and sub.resource_id == rid:
        await runtime.dispatcher.redrive_local(sid)
        me = runtime.settings.canonical_url
        headers = {FORWARDED: "1", **({"authorization": f"Bearer {token}"} if token else {})}
        await asyncio.gather(*(
            runtime.http.post(f"{host.rstrip('/')}/resources/{rid}/subscriptions/{sid}"
                              "/deliveries/redrive", headers=headers)
            for host in runtime.dispatcher.members() if host.rstrip("/") != me),
            return_exceptions=True)
    return RedirectResponse(f"/ui#sub-{quote(sid)}", status_code=303)


async def health(request: Request) -> Response:
    """One subscription's health on this process (asked by the process drawing the page)."""
    if not _authorized(request, _token(request)):
        return Response(status_code=401)
    tables = request.app.state.runtime.dispatcher.tables
    return Response(orjson.dumps(subscription_health(tables, request.path_params["sid"]),
                                 option=orjson.OPT_NON_STR_KEYS), media_type="application/json")


routes = [
    Route("/ui", dashboard, methods=["GET"]),
    Route("/ui/login", login, methods=["GET", "POST"]),
    Route("/ui/redrive/{rid}/{sid}", redrive, methods=["POST"]),
    Route("/ui/health/{sid}", health, methods=["GET"]),
]
