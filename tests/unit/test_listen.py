"""app.listen: what `flare listen` prints and answers (SPEC §11), signatures as Standard
Webhooks check them (§9.6) — on a real socket too."""

from __future__ import annotations

import base64
import io
import os
import threading
import time
from datetime import datetime, timezone

import httpx
import orjson
from standardwebhooks.webhooks import Webhook

from app.listen import describe, make_server

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
BODY = orjson.dumps({"id": "http://api.test/users/42", "action": "create",
                     "updatedAt": "2026-01-01T00:00:00Z", "document": {"id": 42, "version": 1}})


def signed(body: bytes = BODY, secret: str = SECRET, msg_id: str = "msg_1") -> dict[str, str]:
    now = int(time.time())
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(now, timezone.utc),
                                     body.decode())
    return {"Webhook-Id": msg_id, "Webhook-Timestamp": str(now), "Webhook-Signature": signature,
            "Content-Type": "application/json"}


def test_prints_action_document_and_webhook_id_without_a_secret() -> None:
    verdict = describe("POST", "/users/42", signed(), BODY)
    assert verdict.status == 200
    assert verdict.lines[0] == "POST /users/42  create http://api.test/users/42  webhook-id=msg_1"
    assert verdict.lines[1] == '  {"id":42,"version":1}'


def test_signature_ok() -> None:
    verdict = describe("POST", "/users/42", signed(), BODY, secret=SECRET)
    assert verdict.status == 200
    assert verdict.lines[0].endswith("signature ok")


def test_signature_invalid_with_another_secret_or_a_changed_body_or_none() -> None:
    other = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    for headers, body in ((signed(secret=other), BODY), (signed(), BODY + b" "),
                          ({"webhook-id": "x"}, BODY)):
        verdict = describe("POST", "/users/42", headers, body, secret=SECRET)
        assert verdict.status == 401
        assert "signature INVALID" in verdict.lines[0]


def test_headers_on_request_and_bodies_without_envelope() -> None:
    verdict = describe("PUT", "/x", {"X-Custom": "1"}, b'{"id": 42}', show_headers=True)
    assert verdict.lines == ["PUT /x  (no envelope)  webhook-id=-", "  x-custom: 1", '  {"id":42}']


def test_a_real_request_is_printed_and_answered() -> None:
    out = io.StringIO()
    server = make_server("127.0.0.1", 0, SECRET, False, 200, out)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/users/42"
        assert httpx.post(url, content=BODY, headers=signed()).status_code == 200
        assert httpx.post(url, content=BODY, headers=signed(secret="whsec_" + "A" * 32)).status_code == 401
    finally:
        server.shutdown()
        server.server_close()
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("signature ok") and "signature INVALID" in lines[2]
