"""Which requests come from the reverse proxy we trust, and who the client behind it is.

Two things depend on it: the SSO header (COPILOT_AUTH_HEADER) means "this user signed in"
only when our proxy set it, and the sign-in throttle counts per client address, which
behind a proxy is in X-Forwarded-For. A proxy is trusted by its address
(COPILOT_TRUSTED_PROXIES) and/or by a shared secret it adds to each request
(COPILOT_AUTH_PROXY_SECRET in the X-Copilot-Proxy-Secret header); with both set, both must
hold. `copilot serve` runs uvicorn without its own proxy-header handling, so the request's
client is the TCP peer.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable
from functools import lru_cache

from starlette.requests import HTTPConnection

from copilot.settings import Settings

PROXY_SECRET_HEADER = "X-Copilot-Proxy-Secret"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def check_proxy_settings(settings: Settings) -> None:
    """Refuse to start with an SSO header anyone could send, or an unreadable proxy list."""
    trusted_networks(tuple(settings.trusted_proxies))
    if settings.auth_header and not (settings.trusted_proxies or settings.auth_proxy_secret):
        raise ValueError(
            f"COPILOT_AUTH_HEADER={settings.auth_header} is set but no proxy is trusted, so any "
            "client could sign in as anyone by sending that header. Set "
            'COPILOT_TRUSTED_PROXIES (e.g. ["10.0.0.5"], the SSO proxy\'s addresses or CIDRs) '
            f"and/or COPILOT_AUTH_PROXY_SECRET (a secret the proxy sends in {PROXY_SECRET_HEADER})."
        )


@lru_cache(maxsize=8)
def trusted_networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as error:
            raise ValueError(
                f"COPILOT_TRUSTED_PROXIES: {entry!r} is not an IP address or CIDR"
            ) from error
    return tuple(networks)


def _within(address: str, networks: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in networks)


def peer_address(connection: HTTPConnection) -> str:
    return connection.client.host if connection.client else ""


def from_trusted_proxy(connection: HTTPConnection, settings: Settings) -> bool:
    """Did this request come through our proxy (address and/or shared secret)?"""
    if not (settings.trusted_proxies or settings.auth_proxy_secret):
        return False
    networks = trusted_networks(tuple(settings.trusted_proxies))
    if networks and not _within(peer_address(connection), networks):
        return False
    if settings.auth_proxy_secret:
        sent = connection.headers.get(PROXY_SECRET_HEADER, "")
        if not hmac.compare_digest(sent.encode(), settings.auth_proxy_secret.encode()):
            return False
    return True


def client_address(connection: HTTPConnection, settings: Settings) -> str:
    """The client's address: the peer, or behind a trusted proxy the nearest address in
    X-Forwarded-For that is not one of our proxies (entries further left are the client's
    own claims and could be anything)."""
    peer = peer_address(connection)
    networks = trusted_networks(tuple(settings.trusted_proxies))
    if not networks or not _within(peer, networks):
        return peer or "unknown"
    forwarded = ",".join(connection.headers.getlist("x-forwarded-for"))
    for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
        if not _within(hop, networks):
            return hop
    return peer
