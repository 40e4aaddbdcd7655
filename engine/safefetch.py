"""Fetch a URL a caller gave us, without letting it reach inside our network (SSRF).

Every address a host resolves to is checked — loopback, private, link-local (cloud metadata at
169.254.169.254 included), multicast, reserved and unspecified ranges are refused — and the connection
goes to the checked address, so DNS cannot be re-pointed between check and connect. Redirects are
followed by hand, each hop checked again. Size and time are capped. Operators can allow their own
hosts or networks (MEDIAGATE_FETCH_ALLOW) for local servers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from mediagate.errors import GatewayError, invalid_request

USER_FETCH_TIMEOUT_S = 20.0
USER_FETCH_MAX_REDIRECTS = 3
RESOLVE_TIMEOUT_S = 5.0          # a create-time check of a URL used later (webhooks) waits this long for DNS
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class FetchPolicy:
    allow_hosts: frozenset[str] = frozenset()
    allow_networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, spec: str) -> "FetchPolicy":
        hosts: set[str] = set()
        nets: list[IPNetwork] = []
        for item in (s.strip() for s in spec.split(",")):
            if not item:
                continue
            try:
                nets.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                hosts.add(item.lower())
        return cls(frozenset(hosts), tuple(nets))

    def address_allowed(self, ip: IPAddress) -> bool:
        if any(ip in net for net in self.allow_networks):
            return True
        return all(a.is_global and not a.is_multicast for a in _embedded(ip))


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded(ip: IPAddress) -> list[IPAddress]:
    """The address and every IPv4 address it carries (mapped, 6to4, NAT64, Teredo): each must be public."""
    out: list[IPAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            out.append(ip.ipv4_mapped)
        if ip.sixtofour is not None:
            out.append(ip.sixtofour)
        if ip.teredo is not None:
            out.extend(ip.teredo)
        if ip in _NAT64:
            out.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return out


class Refused(Exception):
    """The URL points somewhere a caller may not send us."""


@dataclass
class _CheckingResolver(AbstractResolver):
    policy: FetchPolicy
    host_allowed: bool = False

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, family=socket.AF_UNSPEC)
        out: list[ResolveResult] = []
        for fam, _, proto, _, addr in infos:
            ip = ipaddress.ip_address(addr[0])
            if not (self.host_allowed or self.policy.address_allowed(ip)):
                raise Refused(f"{host} resolves to a non-public address")
            out.append({"hostname": host, "host": addr[0], "port": addr[1], "family": fam, "proto": proto,
                        "flags": socket.AI_NUMERICHOST})
        if not out:
            raise Refused(f"{host} does not resolve")
        return out

    async def close(self) -> None:
        return None


def _check_url(url: str, policy: FetchPolicy, param: str) -> tuple[str, bool]:
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        parts.port  # a port out of range raises here, not later
    except ValueError:
        raise invalid_request(f"'{param}' is not a valid URL.", param, "invalid_url") from None
    if parts.scheme not in ("http", "https") or not host:
        raise invalid_request(f"'{param}' must be an https URL or a data: URL.", param, "invalid_url")
    try:
        literal: IPAddress | None = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    allowed_host = host in policy.allow_hosts or (literal is not None and any(literal in n for n in policy.allow_networks))
    if parts.scheme == "http" and not allowed_host:
        raise invalid_request(f"'{param}' must use https.", param, "invalid_url")
    if parts.username or parts.password:
        raise invalid_request(f"'{param}' must not carry credentials.", param, "invalid_url")
    if literal is not None and not (allowed_host or policy.address_allowed(literal)):
        raise invalid_request(f"'{param}' points at a non-public address.", param, "invalid_url")
    return host, allowed_host


async def fetch(url: str, policy: FetchPolicy, max_bytes: int, param: str) -> bytes:
    """The body at `url`, or a 400 naming `param`; no connection is made to a refused address."""
    for _ in range(USER_FETCH_MAX_REDIRECTS + 1):
        host, allowed_host = _check_url(url, policy, param)
        connector = aiohttp.TCPConnector(resolver=_CheckingResolver(policy, allowed_host), use_dns_cache=False, limit=1)
        try:
            async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
                async with session.get(url, allow_redirects=False,
                                       timeout=aiohttp.ClientTimeout(total=USER_FETCH_TIMEOUT_S)) as resp:
                    if resp.status in (301, 302, 303, 307, 308) and "location" in resp.headers:
                        url = urljoin(url, resp.headers["location"])
                        continue
                    if resp.status != 200:
                        raise invalid_request(f"'{param}' could not be downloaded (HTTP {resp.status}).", param, "invalid_url")
                    if resp.content_length is not None and resp.content_length > max_bytes:
                        raise _too_big(param, max_bytes)
                    chunks: list[bytes] = []
                    total = 0
                    async for chunk in resp.content.iter_chunked(1 << 16):
                        total += len(chunk)
                        if total > max_bytes:
                            raise _too_big(param, max_bytes)
                        chunks.append(chunk)
                    return b"".join(chunks)
        except Refused as exc:
            raise invalid_request(f"'{param}' points at a non-public address ({exc}).", param, "invalid_url") from None
        except GatewayError:
            raise
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            cause = exc.__cause__ if isinstance(exc.__cause__, Refused) else None
            if cause is not None:
                raise invalid_request(f"'{param}' points at a non-public address ({cause}).", param, "invalid_url") from None
            raise invalid_request(f"'{param}' could not be downloaded ({type(exc).__name__}).", param, "invalid_url") from None
    raise invalid_request(f"'{param}' redirects more than {USER_FETCH_MAX_REDIRECTS} times.", param, "invalid_url")


def check(url: str, policy: FetchPolicy, param: str) -> None:
    """Refuse (400 naming `param`) a URL that may never be contacted; resolution is checked on connect."""
    _check_url(url, policy, param)


async def check_resolved(url: str, policy: FetchPolicy, param: str) -> None:
    """`check`, then resolve the host now under the same rules as a fetch's connect: a URL to be used
    later (a webhook) is refused at once (400 naming `param`) when its host is a name for, or a spelling
    of, a non-public address (`localhost`, `127.1`, `2130706433`), or does not resolve. Delivery checks
    again on connect, so DNS re-pointed in between is still caught."""
    host, allowed_host = _check_url(url, policy, param)
    if allowed_host:
        return
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_S):
            await _CheckingResolver(policy).resolve(host.strip("[]"), 0)
    except Refused as exc:
        raise invalid_request(f"'{param}' points at a non-public address ({exc}).", param, "invalid_url") from None
    except (OSError, UnicodeError, TimeoutError):
        raise invalid_request(f"'{param}' names a host that does not resolve.", param, "invalid_url") from None


async def post(url: str, body: bytes, headers: dict[str, str], policy: FetchPolicy, timeout_s: float) -> int:
    """POST to a caller-given URL under the same address rules as `fetch`; returns the status (no redirects)."""
    host, allowed_host = _check_url(url, policy, "url")
    connector = aiohttp.TCPConnector(resolver=_CheckingResolver(policy, allowed_host), use_dns_cache=False, limit=1)
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
        async with session.post(url, data=body, headers=headers, allow_redirects=False,
                                timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            return resp.status


def _too_big(param: str, max_bytes: int) -> GatewayError:
    return GatewayError(413, f"'{param}' is larger than {max_bytes} bytes.", "invalid_request_error", "request_too_large", param)
