"""The SSRF guard (RELIABILITY.md G) for every URL the hub fetches because someone else chose it.

Workspace URL import and the OpenAPI connector (spec URLs, remote ``$ref``s) use the same rules:

1. only ``http``/``https`` URLs without user info, backslashes or control characters, on an allowed port
   (80 and 443 by default);
2. numeric host forms are read the way the C library does (``2130706433``, ``0x7f.1``, ``0177.0.0.1``,
   ``127.1``) so they cannot slip past as "names";
3. the name is resolved (the resolver is injected) and refused if **any** address is not global unicast —
   after unwrapping IPv4-mapped (``::ffff:``), NAT64 (``64:ff9b::/96``) and 6to4 (``2002::/16``) forms;
   the special-purpose ranges the ``ipaddress`` module of older Pythons counts as global are refused by
   name (:data:`_NOT_GLOBAL`: site-local ``fec0::/10``, ``192.0.0.0/24``, the 6to4 relay anycast
   ``192.88.99.0/24``, the documentation prefixes);
4. the caller connects to the address that was checked (:meth:`URLGuard.pin`: the URL carries the IP,
   ``Host`` and TLS SNI carry the name; :meth:`URLGuard.pin_request` does all three to a request), so a
   second DNS answer cannot redirect the socket (rebinding).

``allow_loopback`` (local development) admits 127.0.0.0/8, ``::1`` and ``::ffff:127.x`` — never a NAT64 or
6to4 address wrapping a loopback one, which routes off this host — on the allowed ports, or on any port
when ``loopback_ports`` is None. An operator can name hosts (``host`` or ``host:port``) in ``allow_hosts``:
those are reached although they are not public (an internal documentation server, a test server on
127.0.0.1). Every refusal raises the same :class:`BadRequest` with the same words, whichever rule fired,
so the error does not reveal which internal address or port exists.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import anyio
import httpx2

from toolbridge.errors import BadRequest

__all__ = [
    "RequestPin",
    "Resolver",
    "SyncResolver",
    "URLGuard",
    "is_blocked_address",
    "is_local_loopback",
    "system_addresses",
    "system_resolver",
]

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
SyncResolver = Callable[[str, int], Sequence[str]]
RequestPin = Callable[[httpx2.Request], Awaitable[None]]
"""Checks a request's URL and points the request at the checked address (or refuses it)."""
IP = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_6TO4 = ipaddress.ip_network("2002::/16")
_NOT_GLOBAL = tuple(
    ipaddress.ip_network(n)
    for n in (
        "192.0.0.0/24",  # IETF protocol assignments (192.0.0.8 dummy; PCP/TURN anycast are no fetch targets)
        "192.88.99.0/24",  # deprecated 6to4 relay anycast (RFC 7526)
        "fec0::/10",  # deprecated site-local (RFC 3879): ip.is_global is True for it
        "2001:db8::/32",  # documentation (RFC 3849)
        "3fff::/20",  # documentation (RFC 9637)
        "64:ff9b:1::/48",  # local-use NAT64 (RFC 8215)
    )
)
"""Special-purpose ranges (IANA registries) that are not globally reachable but that ``is_global``
reports as global on some supported Python version."""
_NUMERIC = re.compile(r"^[0-9a-fA-FxX.]+$")
_BLOCKED_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """Every address the operating system returns for ``host``."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def system_addresses(host: str, port: int) -> Sequence[str]:
    """:func:`system_resolver` for synchronous callers (loading a document happens before the loop)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _unwrap(ip: IP) -> IP:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if ip in _6TO4:
            return ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF)
    return ip


def is_blocked_address(address: str, *, allow_loopback: bool = False) -> bool:
    """True unless ``address`` (after unwrapping) is global unicast (or loopback, when allowed)."""
    if allow_loopback and is_local_loopback(address):
        return False
    try:
        ip = _unwrap(ipaddress.ip_address(address.split("%", 1)[0]))
    except ValueError:
        return True
    if any(ip.version == net.version and ip in net for net in _NOT_GLOBAL):
        return True
    return not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified


def is_local_loopback(address: str) -> bool:
    """True for a loopback address of this host: 127.0.0.0/8, ``::1``, ``::ffff:127.x`` — not a NAT64 or
    6to4 address that wraps one (a gateway on the network would connect to its own loopback)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


@dataclass(frozen=True, slots=True)
class URLGuard:
    """The rules, and the words of the one refusal every rule raises."""

    refusal: str = "this URL is not reachable from the hub: only public http(s) addresses are"
    hint: str = "use a publicly reachable http:// or https:// URL on port 80 or 443"
    allowed_ports: tuple[int, ...] = (80, 443)
    allow_loopback: bool = False
    """Local development only: also allow 127.0.0.0/8 and ::1 (on ``loopback_ports``)."""
    loopback_ports: tuple[int, ...] | None = None
    """With ``allow_loopback``: the ports besides ``allowed_ports`` a loopback address may be reached on
    (None: any port). Other addresses keep to ``allowed_ports`` whatever this says."""
    allow_hosts: frozenset[str] = frozenset()
    """``host`` or ``host:port`` (lower case) reached whatever their addresses and ports."""

    def blocked(self) -> BadRequest:
        return BadRequest(self.refusal, hint=self.hint)

    def check(self, url: str) -> httpx2.URL:
        """``url`` parsed, or :meth:`blocked` raised when its form alone is refused."""
        if any(ord(c) < 0x21 or c == "\\" for c in url):
            raise self.blocked()
        try:
            parsed = httpx2.URL(url)
        except (httpx2.InvalidURL, ValueError):
            raise self.blocked() from None
        if parsed.scheme not in ("http", "https") or not parsed.host or parsed.userinfo:
            raise self.blocked()
        if self.allowed(parsed):
            return parsed
        if not self._port_allowed(_host_port(parsed)[1], loopback=self.allow_loopback):
            raise self.blocked()
        if parsed.host.rstrip(".").lower() in _BLOCKED_NAMES and not self.allow_loopback:
            raise self.blocked()
        return parsed

    def _port_allowed(self, port: int, *, loopback: bool) -> bool:
        """``port`` is allowed for every address, or (``loopback``) for loopback ones."""
        if port in self.allowed_ports:
            return True
        return loopback and (self.loopback_ports is None or port in self.loopback_ports)

    def allowed(self, url: httpx2.URL) -> bool:
        """True when the operator named this URL's host (with or without its port) in ``allow_hosts``."""
        if not self.allow_hosts:
            return False
        host = url.host.rstrip(".").lower()
        port = url.port or (443 if url.scheme == "https" else 80)
        return host in self.allow_hosts or f"{host}:{port}" in self.allow_hosts

    def names_origin(self, url: httpx2.URL) -> bool:
        """True when ``allow_hosts`` names this URL's host together with its port (``host:port``)."""
        host, port = _host_port(url)
        return f"{host.lower()}:{port}" in self.allow_hosts

    def numeric(self, url: httpx2.URL) -> str | None:
        """The address a numeric host stands for (C library rules), or None for a name to resolve."""
        host = url.host
        try:
            return str(ipaddress.ip_address(host.strip("[]")))
        except ValueError:
            pass
        if _NUMERIC.fullmatch(host) and not host.endswith("."):
            try:
                return socket.inet_ntoa(socket.inet_aton(host))
            except OSError:
                raise self.blocked() from None
        return None

    def pin(self, url: httpx2.URL, addresses: Sequence[str]) -> tuple[httpx2.URL, str]:
        """The URL rewritten to the first of ``addresses`` (all of them checked), and the Host header."""
        if not addresses or any(is_blocked_address(a, allow_loopback=self.allow_loopback) for a in addresses):
            raise self.blocked()
        loopback = self.allow_loopback and all(is_local_loopback(a) for a in addresses)
        if not self._port_allowed(_host_port(url)[1], loopback=loopback):
            raise self.blocked()
        return url.copy_with(host=addresses[0]), _host_header(url)

    async def pin_async(self, url: httpx2.URL, resolver: Resolver) -> tuple[httpx2.URL, str]:
        """:meth:`pin` with the addresses ``resolver`` returns for the URL's host."""
        if self.allowed(url):
            return url, _host_header(url)
        numeric = self.numeric(url)
        try:
            addresses = [numeric] if numeric is not None else await resolver(*_host_port(url))
        except (OSError, UnicodeError):  # a name the resolver cannot even encode (a label over 63 characters)
            raise self.blocked() from None
        return self.pin(url, addresses)

    async def pin_request(self, request: httpx2.Request, resolver: Resolver) -> None:
        """Point ``request`` at the checked address of its host (:meth:`pin_async`); its ``Host`` header
        and TLS server name keep the name."""
        url = request.url
        request.url, request.headers["Host"] = await self.pin_async(url, resolver)
        if url.scheme == "https":
            request.extensions["sni_hostname"] = url.host

    def pin_sync(self, url: httpx2.URL, resolver: SyncResolver) -> tuple[httpx2.URL, str]:
        """:meth:`pin_async` for synchronous callers."""
        if self.allowed(url):
            return url, _host_header(url)
        numeric = self.numeric(url)
        try:
            addresses = [numeric] if numeric is not None else resolver(*_host_port(url))
        except (OSError, UnicodeError):  # a name the resolver cannot even encode (a label over 63 characters)
            raise self.blocked() from None
        return self.pin(url, addresses)


def _host_port(url: httpx2.URL) -> tuple[str, int]:
    return url.host.rstrip("."), url.port or (443 if url.scheme == "https" else 80)


def _host_header(url: httpx2.URL) -> str:
    return url.host if url.port is None else f"{url.host}:{url.port}"
