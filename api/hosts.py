"""Is a subscriber host public? The API's early check when a subscription is created
(SPEC §7 extension, §11a). The sender checks again the address it connects to
(streams/sender.py): that one counts, this one gives an early 400."""

from __future__ import annotations

import socket
from collections.abc import Callable

from tables.addresses import is_public_address


def _host_only(host: str) -> str:
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def is_public_host(host: str, resolve: Callable[..., list] = socket.getaddrinfo) -> bool:
    """True when every address the host resolves to is public (tables/addresses.py)."""
    name = _host_only(host)
    try:
        infos = resolve(name, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError, ValueError):
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(is_public_address(a) for a in addresses)
