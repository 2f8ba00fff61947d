"""`flare start --help` lists every setting; `flare config` prints them, secrets masked."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from app.config import Settings
from app.settings_help import settings_help, shown

FLARE = str(Path(sys.executable).with_name("flare"))


def run(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([FLARE, *args], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", **(env or {})})
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_start_help_lists_every_setting_with_its_variable_default_and_meaning() -> None:
    text = run("start", "--help")
    for item in settings_help():
        assert f"{item.env} (default: {item.default})" in text, item.key
        assert item.text, f"{item.key} has no #: comment in app/config.py"
    assert len(settings_help()) == len(dataclasses.fields(Settings))


def test_config_prints_the_effective_settings_with_tokens_masked(tmp_path: Path) -> None:
    toml = tmp_path / "flare.toml"
    toml.write_text('topic_prefix = "fromfile"\nhttp_port = 9001\n')
    text = run("config", "--config", str(toml),
               env={"FLARE_HTTP_PORT": "9002", "FLARE_API_TOKENS": "s3cret,other"})
    values = {k: orjson.loads(v) for k, v in (line.split(" = ", 1) for line in text.splitlines())}
    assert set(values) == {f.name for f in dataclasses.fields(Settings)}
    assert values["topic_prefix"] == "fromfile" and values["http_port"] == 9002
    assert values["api_tokens"] == ["***", "***"] and "s3cret" not in text


@pytest.mark.parametrize(("value", "text"), [((), "(none)"), (("a", "b"), "a,b"), (True, "true"),
                                             ("", "(empty)"), (8080, "8080")])
def test_shown(value, text) -> None:
    assert shown(value) == text
