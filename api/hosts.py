"""Is a subscriber host public? (SPEC §7 extension: no loopback, private, link-local or
metadata targets unless configured). The one place the API resolves names."""

from __future__ import annotations

import ipaddress
import socket


def _host_only(host: str) -> str:
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def is_public_host(host: str) -> bool:
    """True when every address the host resolves to is globally routable."""
    name = _host_only(host)
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return False
    addresses = {info[4][0] for info in infos}
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if not ip.is_global or ip.is_multicast:
            return False
    return bool(addresses)
