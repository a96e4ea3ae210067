"""Guard against server-side request forgery: decide, before any connection, where a URL may go.

A seed list or a link on a crawled page must not make the crawler talk to the machine it runs
on, the private network around it, or a cloud metadata endpoint. The check runs *after* DNS
resolution (a public-looking name can resolve to ``10.0.0.1``) and on every address the name
resolves to; the fetcher then connects to the checked address itself (the connection is pinned),
so a second, different DNS answer cannot slip in between check and connect.

Only an explicit allow-list (IPs, CIDRs, or exact host names) lifts the rule; tests use it for
``127.0.0.1``.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Host names refused whatever they resolve to (cloud metadata services).
METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata.goog", "metadata", "instance-data"})
#: Metadata addresses that ``ipaddress`` does not already classify as non-global.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)


class BlockedAddress(Exception):
    """The URL's host is (or resolves to) an address the crawler must not contact."""

    reason = "ssrf_blocked"


@dataclass(frozen=True)
class Resolved:
    """A host that passed the guard, with the addresses it may be contacted at (first preferred)."""

    host: str
    addresses: tuple[str, ...]


def address_problem(ip: IPAddress) -> str | None:
    """Why ``ip`` is forbidden ("loopback", "private", "metadata"...), or None if it is public."""
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        return address_problem(mapped)
    if ip in METADATA_ADDRESSES:
        return "metadata"
    for attr in (
        "is_loopback",
        "is_link_local",
        "is_multicast",
        "is_unspecified",
        "is_reserved",
        "is_private",
    ):
        if getattr(ip, attr):
            return attr[3:]
    if not ip.is_global:  # e.g. 100.64.0.0/10 (carrier-grade NAT), 192.0.0.0/24
        return "not_global"
    return None


class AddressGuard:
    """Resolves host names and refuses forbidden addresses; caches answers for ``cache_s`` seconds.

    ``allow`` entries are IP addresses, CIDR networks, or exact host names; an allowed network
    exempts addresses in it, an allowed host name exempts whatever that name resolves to.
    """

    def __init__(self, allow: Iterable[str] = (), cache_s: float = 60.0) -> None:
        self.allowed_networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.allowed_hosts: set[str] = set()
        for entry in allow:
            try:
                self.allowed_networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                self.allowed_hosts.add(entry.strip().lower().rstrip("."))
        self.cache_s = cache_s
        self._cache: dict[tuple[str, int], tuple[float, Resolved]] = {}

    def _allowed(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.allowed_networks)

    def check_address(self, ip: IPAddress) -> None:
        """Raise ``BlockedAddress`` if ``ip`` is forbidden and not allow-listed."""
        problem = address_problem(ip)
        if problem is not None and not self._allowed(ip):
            raise BlockedAddress(f"{ip} is {problem}")

    def resolve(self, host: str, port: int) -> Resolved:
        """Check ``host`` (a name or an IP literal) and return the addresses to connect to.

        Every address of the DNS answer must pass: one private address among public ones is
        enough to refuse (an attacker controls which one a client would pick).
        """
        host = host.strip("[]").lower().rstrip(".")
        key = (host, port)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.cache_s:
            return hit[1]
        try:
            literal: IPAddress | None = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            self.check_address(literal)
            resolved = Resolved(host, (str(literal),))
        else:
            if host in METADATA_HOSTS and host not in self.allowed_hosts:
                raise BlockedAddress(f"{host} is a cloud metadata host name")
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except (socket.gaierror, UnicodeError) as exc:
                raise LookupError(f"cannot resolve {host}: {exc}") from exc
            addresses: list[str] = []
            for _family, _type, _proto, _canon, sockaddr in infos:
                ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
                if host not in self.allowed_hosts:
                    try:
                        self.check_address(ip)
                    except BlockedAddress as exc:
                        raise BlockedAddress(f"{host} resolves to {exc}") from None
                if str(ip) not in addresses:
                    addresses.append(str(ip))
            if not addresses:
                raise LookupError(f"cannot resolve {host}: empty answer")
            resolved = Resolved(host, tuple(addresses))
        self._cache[key] = (now, resolved)
        return resolved
