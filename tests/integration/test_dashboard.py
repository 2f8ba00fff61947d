"""The dashboard at /ui (SPEC §11) in headless Debian Chromium, with API tokens set: it
loads after signing in, shows a resource and a subscription made here, shows a delivery
failure while the receiver answers 500, and its redrive button delivers it. Screenshots go
to tests/artifacts/ (git-ignored)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.browser import Browser, chromium
from tests.flare_process import poll, poll_async, unique_name
from tests.integration.delivery_support import (always, deliveries, new_resource, put,
                                                subscribe)
from tests.receiver import Receiver

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
TOKEN = "dashboard-token"


async def until(browser: Browser, expression: str, expected, timeout: float = 30.0):
    """Poll a JavaScript expression until it equals ``expected``."""
    async def equal() -> bool:
        return await browser.evaluate(expression) == expected
    await poll_async(equal, timeout=timeout, interval=0.2,
                     message=f"{expression!r} == {expected!r}")


def test_ui_needs_the_token_cookie(flare_factory) -> None:
    flare = flare_factory(prefix=unique_name("uiauth"), env={"FLARE_API_TOKENS": TOKEN}).start()
    with httpx.Client(base_url=flare.base_url, follow_redirects=False) as client:
        assert client.get("/ui").status_code == 303
        assert client.get("/ui").headers["location"] == "/ui/login"
        assert client.post("/ui/redrive/a/b").headers["location"] == "/ui/login"
        assert client.get("/ui/login?token=wrong").status_code == 401
        signed = client.get(f"/ui/login?token={TOKEN}")
        assert signed.status_code == 303 and signed.headers["location"] == "/ui"
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
        page = client.get("/ui")
        assert page.status_code == 200 and "Flare dashboard" in page.text
        assert "location.reload()" in page.text  # it reloads itself
        # The cookie opens only the dashboard, not the API.
        assert client.get("/resources").status_code == 401


async def test_dashboard_in_chromium(flare_factory, tmp_path: Path) -> None:
    binary = chromium()
    flare = flare_factory(prefix=unique_name("ui"), env={"FLARE_API_TOKENS": TOKEN})
    flare.client.headers["authorization"] = f"Bearer {TOKEN}"
    flare.start()
    receiver = Receiver().up()
    try:
        rid, base = new_resource(flare)
        always(receiver, "/ui/1", 500)
        sub = subscribe(flare, rid, receiver.url + "/ui/{id}",
                        retry={"initial": 0.1, "max": 0.2, "giveUpAfter": 0.5})
        sid = sub["id"]
        put(flare, f"{base}/1", 1, name="Ada")
        poll(lambda: len(deliveries(flare, rid, sid, "dead")) == 1, timeout=30,
             message="the delivery parked as dead")

        async with Browser(binary, tmp_path / "chromium", width=1140, height=440) as browser:
            # Without the cookie: the sign-in form; sign in with it.
            await browser.navigate(f"{flare.base_url}/ui")
            await until(browser, "location.pathname", "/ui/login")
            await until(browser, "!!document.querySelector('input[name=token]')", True)
            await browser.evaluate(
                f"document.querySelector('input[name=token]').value = {TOKEN!r};"
                " document.querySelector('form').submit(); true")
            await until(browser, "location.pathname", "/ui")
            row = f"document.querySelector('#sub-{sid}')"
            await until(browser, f"!!{row}", True)
            text = await browser.evaluate("document.body.innerText")
            assert f"http://{base.split('/')[2]}/users/{{id}}" in text
            assert rid in text and sid in text
            assert "changes" in text and "dispatcher" in text and "ready" in text
            await until(browser, f"{row}.querySelector('td.dead').textContent", "1")
            assert "500" in await browser.evaluate(f"{row}.querySelector('td.last').textContent")
            await browser.screenshot(ARTIFACTS / "dashboard.png")

            # The receiver is fixed; the page's redrive button sends the dead delivery again.
            receiver.stop_scripting("/ui/1")
            sent_before = len(receiver.received("/ui/1"))
            assert await browser.evaluate(
                f"!{row}.querySelector('form.redrive button').disabled") is True
            await browser.evaluate(f"{row}.querySelector('form.redrive button').click(); true")
            poll(lambda: len(receiver.received("/ui/1")) > sent_before, timeout=30,
                 message="the redriven delivery")
            assert receiver.received("/ui/1")[-1].json()["document"] == {"version": 1,
                                                                        "name": "Ada"}
            poll(lambda: deliveries(flare, rid, sid) == [], timeout=30,
                 message="nothing pending or dead after the redrive")
            await until(browser, f"{row}.querySelector('td.dead').textContent", "0")
            await until(browser, f"{row}.querySelector('td.pending').textContent", "0")
            await browser.screenshot(ARTIFACTS / "dashboard-after-redrive.png")
    finally:
        receiver.down()
