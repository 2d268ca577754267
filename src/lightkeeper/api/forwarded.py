"""Who the client is: the TCP peer, or, when the peer is a configured trusted proxy, the
address that proxy says it forwards for (``X-Forwarded-For``).

The address feeds CAM's ``qcs:ip`` conditions and the access log, so a client must never be
able to choose it: the header is ignored unless the peer is trusted, and only the entries the
trusted proxies appended are believed.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

UNKNOWN = "unknown"  # RFC 7239's name for an address that cannot be told; fails CAM closed
_PORT = re.compile(r":[0-9]{1,5}")


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """Trusted proxies as configured: IPs or CIDRs, several per value separated by commas or
    blanks (``LIGHTKEEPER_TRUSTED_PROXY="10.0.0.1, 10.1.0.0/16"``). Host bits are allowed
    (``10.1.2.3/16`` is ``10.1.0.0/16``), as in CAM conditions."""
    networks = []
    for value in values:
        for item in re.split(r"[\s,]+", value.strip()):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ValueError(f'"{item}" is not an IP address or CIDR') from None
    return tuple(networks)


def parse_address(text: str) -> Address | None:
    """An address as proxies write it (``1.2.3.4``, ``1.2.3.4:5678``, ``2001:db8::1``,
    ``[2001:db8::1]:5678``), IPv4-mapped IPv6 as the IPv4 address; None if it is none."""
    text = text.strip()
    if text.startswith("["):
        host, closed, port = text[1:].partition("]")
        if not closed or (port and not _PORT.fullmatch(port)):
            return None
        text = host
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
        if not _PORT.fullmatch(f":{port}"):
            return None
        text = host
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, proxies: Sequence[Network]) -> bool:
    return any(address in network for network in proxies)


def client_address(
    peer: str, forwarded_for: Sequence[str], proxies: Sequence[Network]
) -> tuple[str, bool]:
    """The client's address, and whether it was taken from ``X-Forwarded-For``.

    From a trusted peer, the header's entries (all its lines, as one list) are read from the
    right: each proxy appends the address it received the request from, so trusted proxies are
    skipped and the first other entry is the client. Entries to its left were written by the
    client and are never believed. An entry that is not an address is ``unknown``.
    """
    address = parse_address(peer)
    if address is None:
        return UNKNOWN, False
    if not proxies or not forwarded_for or not _trusted(address, proxies):
        return str(address), False
    entries = [e for line in forwarded_for for e in line.split(",") if e.strip()]
    if not entries:
        return str(address), False
    hops = []
    for entry in reversed(entries):
        hop = parse_address(entry)
        if hop is None:
            return UNKNOWN, True
        if not _trusted(hop, proxies):
            return str(hop), True
        hops.append(hop)
    return str(hops[-1]), True  # every hop is a trusted proxy: the first one is the client
