"""Which network addresses a URL connector may reach (SSRF protection).

Before any connection, the host of every URL (and of every redirect hop) is resolved
and *each* address checked: private, loopback, link-local, multicast, reserved,
unspecified and shared (CGNAT) addresses are refused, in IPv4 and IPv6, including
IPv4 addresses hidden in IPv6 (mapped ``::ffff:a.b.c.d``, NAT64, 6to4, Teredo),
unless an entry of the allow-list (a CIDR, an address or a host name) covers them.
IP literals are judged without any DNS query, so a refused address never sees traffic.
The fetcher then connects to the checked address itself, so a second DNS answer
(DNS rebinding) cannot swap it.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from aerodrome.knowledge.documents import DocumentError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class BlockedAddress(DocumentError):
    """A URL points to an address the policy refuses."""

    status = 403
    code = "address_not_allowed"


def _kind(ip: IPAddress) -> str | None:
    """Why an address is not public, or None when it is."""
    checks = (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
    )
    for name, hit in checks:
        if hit:
            return name
    return None if ip.is_global else "non-public"


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4, Teredo), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def refusal(ip: IPAddress) -> str | None:
    """Why the address is refused by default ("a loopback address"), or None when it is public."""
    inner = embedded_ipv4(ip)
    inner_kind = _kind(inner) if inner is not None else None
    if inner_kind is not None:
        return f"an IPv6 address embedding a {inner_kind} IPv4 address ({inner})"
    kind = _kind(ip)
    if kind is None:
        return None
    return f"an {kind} address" if kind[0] in "aeiou" else f"a {kind} address"


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Allow-list of networks and host names that may be private; everything else must be public."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def from_allow_list(cls, entries: Sequence[str]) -> AddressPolicy:
        """Entries are CIDRs ("10.0.0.0/8"), addresses ("127.0.0.1", "::1") or host names ("intranet")."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for entry in entries:
            value = entry.strip().strip("[]")
            if not value:
                continue
            try:
                networks.append(ipaddress.ip_network(value, strict=False))
            except ValueError:
                hosts.add(value.lower().rstrip("."))
        return cls(tuple(networks), frozenset(hosts))

    def allows(self, ip: IPAddress, host: str = "") -> bool:
        """Whether the fetcher may connect to this address (reached through this host name)."""
        if host.lower().rstrip(".") in self.hosts:
            return True
        if any(ip in net for net in self.networks if net.version == ip.version):
            return True
        inner = embedded_ipv4(ip)
        if inner is not None and any(inner in net for net in self.networks if net.version == 4):
            return True
        return refusal(ip) is None

    def resolve(self, url: str) -> list[IPAddress]:
        """The checked addresses for a URL, or :class:`BlockedAddress` / :class:`DocumentError`.

        Every address the host resolves to must be allowed (a host answering with one
        public and one private address is refused).
        """
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise DocumentError(f"unsupported URL scheme {parts.scheme!r} (http and https only)")
        host = parts.hostname
        if not host:
            raise DocumentError(f"URL without a host: {url}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise DocumentError(f"invalid port in {url}") from exc
        addresses = resolve_host(host, port)
        for ip in addresses:
            if not self.allows(ip, host):
                reason = refusal(ip) or "a non-public address"
                raise BlockedAddress(
                    f"refused: {host} resolves to {ip}, {reason} (add it to allow_private to permit it)"
                )
        return addresses


def resolve_host(host: str, port: int) -> list[IPAddress]:
    """IP literals as they are (no DNS query); names through the system resolver, in its order."""
    try:
        return [ipaddress.ip_address(host.strip("[]").split("%")[0])]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise DocumentError(f"unreachable: cannot resolve {host} ({exc})") from exc
    out: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if ip not in out:
            out.append(ip)
    if not out:
        raise DocumentError(f"unreachable: {host} has no address")
    return out
