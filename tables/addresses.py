"""Is an IP address a public target? (SPEC §11a: subscriber addresses).

Pure, and the one rule both checks use: the API's early check when a subscription is
created (api/hosts.py) and the sender's check of the address it is about to connect to
(streams/sender.py), which is the one that counts.

An address is public when it is globally routable and not multicast. Forms that carry an
IPv4 address inside IPv6 are judged by that IPv4 address: v4-mapped ``::ffff:a.b.c.d``,
NAT64 ``64:ff9b::/96`` (and the local-use ``64:ff9b:1::/48``), 6to4 ``2002::/16``, and the
deprecated v4-compatible ``::a.b.c.d``; Teredo (``2001::/32``) is refused whole.
"""

from __future__ import annotations

import ipaddress

__all__ = ["is_public_address", "embedded_ipv4"]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_TEREDO = ipaddress.ip_network("2001::/32")
_V4_COMPATIBLE = ipaddress.ip_network("::/96")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, in the forms above, else ``None``."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64 or ip in _NAT64_LOCAL or ip in _V4_COMPATIBLE:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _SIX_TO_FOUR:
        return ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF)
    return None


def is_public_address(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for a globally routable unicast address; anything unparsable is not public.

    A zone (``fe80::1%eth0``) is cut off first; a link-local address is refused anyway.
    """
    if isinstance(address, str):
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
    else:
        ip = address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _TEREDO:
            return False
        inner = embedded_ipv4(ip)
        if inner is not None:
            return is_public_address(inner)
    return ip.is_global and not ip.is_multicast and not ip.is_reserved
