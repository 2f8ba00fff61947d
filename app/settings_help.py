"""Every setting with its ``FLARE_*`` variable, default and meaning, for ``flare start
--help`` and ``flare config``. The meanings are the ``#:`` comments above each field of
:class:`app.config.Settings`, read from its source, so they cannot drift from it."""

from __future__ import annotations

import dataclasses
import inspect
import re
from dataclasses import dataclass

import orjson

from app.config import Settings

#: For the fields whose comment is only a section heading or absent.
FALLBACK = {
    "http_port": "Port of the HTTP API.",
    "log_level": "debug, info, warning or error.",
}


@dataclass(frozen=True)
class SettingHelp:
    key: str
    env: str
    default: str
    text: str


def _comments() -> dict[str, str]:
    """field name → the ``#:`` comment lines just above it (or above a run of fields)."""
    found: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(Settings).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        field = re.match(r"(\w+)\s*:\s*[^=]+=", stripped)
        if field and not stripped.startswith("def "):
            if pending:
                found[field.group(1)] = " ".join(pending)
            pending = []
        elif not stripped:
            pending = []
    return found


def shown(value: object) -> str:
    """A value as written in TOML (and close to what a FLARE_* variable takes)."""
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value) if value else "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == "":
        return "(empty)"
    return str(value)


def settings_help() -> list[SettingHelp]:
    comments = _comments()
    defaults = Settings()
    return [SettingHelp(f.name, f"FLARE_{f.name.upper()}", shown(getattr(defaults, f.name)),
                        (comments.get(f.name) or FALLBACK.get(f.name, "")).replace("``", ""))
            for f in dataclasses.fields(Settings)]


def start_epilog() -> str:
    lines = ["Settings: defaults, then the --config TOML file, then FLARE_* variables.", ""]
    for item in settings_help():
        lines.append(f"{item.env} (default: {item.default})")
        if item.text:
            lines.append(f"    {item.text}")
    return "\n".join(lines)


def effective(settings: Settings) -> str:
    """The settings in effect, as TOML, secrets masked (``flare config``)."""
    masked = settings.masked()
    return "\n".join(f"{key} = {orjson.dumps(value).decode()}" for key, value in masked.items())

