"""The README's "Using it" walkthrough, run exactly as written (SPEC §11, `flare listen`),
and the private-targets defaults of `make run` and `flare start`.

The commands come from the README between its walkthrough markers, so they cannot drift;
only the ports change (Flare's and the receiver's are free ports here), and `.venv/bin/`
is this test's own virtualenv.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from app.local_kafka import free_port
from tests.flare_process import poll, unique_name

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BIN = str(Path(sys.executable).parent)


def walkthrough() -> str:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- walkthrough:start -->\n```sh\n(.*?)```\n<!-- walkthrough:end -->",
                      text, re.S)
    assert block, "README.md has no walkthrough block between its markers"
    return block.group(1)


def adapt(script: str, flare_port: int, receiver_port: int) -> str:
    return (script.replace("localhost:8080", f"localhost:{flare_port}")
            .replace("127.0.0.1:9000", f"127.0.0.1:{receiver_port}")
            .replace("--port 9000", f"--port {receiver_port}")
            .replace(".venv/bin/", BIN + "/"))


class Output:
    """The lines a subprocess prints, collected by a thread."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen) -> None:
        for line in process.stdout:
            self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        return "\n".join(self.lines)


def test_the_readme_walkthrough_prints_the_notifications(flare_factory) -> None:
    flare = flare_factory(prefix=unique_name("walk")).start()
    receiver_port = free_port()
    script = adapt(walkthrough(), flare.port, receiver_port)
    listen_lines = [line for line in script.splitlines() if " listen " in line
                    and not line.lstrip().startswith("#")]
    assert len(listen_lines) == 1, listen_lines
    rest = script.replace(listen_lines[0], "")

    listener = subprocess.Popen(["bash", "-c", "exec " + listen_lines[0]], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output = Output(listener)
        poll(lambda: "listening on" in output.text(), timeout=20, message="flare listen ready")
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", rest], cwd=ROOT,
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PATH": f"{BIN}:/usr/bin:/bin"})
        assert done.returncode == 0, done.stderr
        # The GET between the puts answered the document.
        assert '"content":{"id":42,"version":1}' in done.stdout, done.stdout

        def printed() -> list[str]:
            found = [line for line in output.lines if line.startswith("POST /users/42")]
            return found if len(found) >= 3 else []

        lines = poll(printed, timeout=30, message=f"three notifications:\n{output.text()}")
        url = "http://api.example/users/42"
        assert [line.split("  ")[1] for line in lines] == [f"create {url}", f"update {url}",
                                                           f"delete {url}"], output.text()
        assert all(line.endswith("signature ok") for line in lines), output.text()
        assert all("webhook-id=msg_" in line for line in lines), output.text()
        assert '  {"id":42,"version":2,"name":"Ada"}' in output.lines
    finally:
        listener.terminate()
        listener.wait(timeout=10)


def test_flare_start_refuses_private_targets_by_default_and_says_so_first(flare_factory) -> None:
    flare = flare_factory(prefix=unique_name("priv"))
    flare.env.pop("FLARE_ALLOW_PRIVATE_TARGETS")
    flare.start()
    first = flare.log().splitlines()[0]
    assert "private subscriber targets: refused" in first, first
    host = f"{unique_name('api')}.test"
    rid = flare.post("/resources", json={"endpoint": f"http://{host}/users/{{id}}",
                                         "change": {"field": "version"}}).json()["id"]
    answer = flare.post(f"/resources/{rid}/subscriptions", json={
        "endpoint": {"url": "http://127.0.0.1:9/users/{id}", "method": "post"},
        "delivery": {"success": [200], "discard": [410]}})
    assert answer.status_code == 400
    assert "is not a public address" in answer.json()["error"]["detail"]


def test_flare_start_with_private_targets_allowed_says_so_first(flare) -> None:
    assert "private subscriber targets: allowed" in flare.log().splitlines()[0]


@pytest.mark.parametrize(("given", "expected"), [(None, "true"), ("false", "false"),
                                                 ("true", "true")])
def test_make_run_allows_private_targets_unless_told_otherwise(tmp_path: Path, given, expected):
    """`make run` with a stand-in `flare` that prints what it was given."""
    fake = tmp_path / "flare"
    fake.write_text('#!/bin/sh\necho "private=$FLARE_ALLOW_PRIVATE_TARGETS $*"\n')
    fake.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "FLARE_ALLOW_PRIVATE_TARGETS"}
    if given is not None:
        env["FLARE_ALLOW_PRIVATE_TARGETS"] = given
    done = subprocess.run(["make", "-s", "run", f"BIN={tmp_path}", "STAMP="], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith(f"private={expected} with-kafka"), done.stdout
