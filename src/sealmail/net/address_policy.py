"""Address classification for outbound fetches: which IP addresses are public (SSRF policy).

Split from :mod:`sealmail.net.http_client`, which re-exports these names.
"""

from __future__ import annotations

import enum
import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressClass(enum.StrEnum):
    """What kind of destination an IP address is; only ``public`` may be fetched from."""

    PUBLIC = "public"
    LOOPBACK = "loopback"
    PRIVATE = "private"
    LINK_LOCAL = "link_local"
    METADATA = "metadata"
    SHARED = "shared_address_space"
    MULTICAST = "multicast"
    RESERVED = "reserved"
    UNSPECIFIED = "unspecified"
    NON_GLOBAL = "non_global"


# Explicit tables first, so the verdict does not depend on which Python patch release
# updated ``ipaddress``'s idea of "private"; the attribute checks below catch the rest.
_V4_TABLE: tuple[tuple[ipaddress.IPv4Network, AddressClass], ...] = tuple(
    (ipaddress.IPv4Network(net), cls)
    for net, cls in (
        # RFC 1122 §3.2.1.3 "this host on this network"; Linux connects 0.0.0.0 to itself.
        ("0.0.0.0/8", AddressClass.UNSPECIFIED),
        ("127.0.0.0/8", AddressClass.LOOPBACK),
        # The cloud instance-metadata service, the classic SSRF prize (before 169.254/16).
        ("169.254.169.254/32", AddressClass.METADATA),
        ("169.254.0.0/16", AddressClass.LINK_LOCAL),  # RFC 3927
        ("10.0.0.0/8", AddressClass.PRIVATE),  # RFC 1918
        ("172.16.0.0/12", AddressClass.PRIVATE),
        ("192.168.0.0/16", AddressClass.PRIVATE),
        ("100.64.0.0/10", AddressClass.SHARED),  # RFC 6598 carrier-grade NAT
        ("224.0.0.0/4", AddressClass.MULTICAST),
        ("240.0.0.0/4", AddressClass.RESERVED),  # RFC 1112 §4, includes 255.255.255.255
    )
)
_V6_TABLE: tuple[tuple[ipaddress.IPv6Network, AddressClass], ...] = tuple(
    (ipaddress.IPv6Network(net), cls)
    for net, cls in (
        ("::/128", AddressClass.UNSPECIFIED),
        ("::1/128", AddressClass.LOOPBACK),
        ("fe80::/10", AddressClass.LINK_LOCAL),  # RFC 4291 §2.5.6
        ("fec0::/10", AddressClass.PRIVATE),  # deprecated site-local (RFC 3879), still routable inside
        ("fc00::/7", AddressClass.PRIVATE),  # unique local (RFC 4193); AWS metadata is fd00:ec2::254
        ("ff00::/8", AddressClass.MULTICAST),
        ("64:ff9b:1::/48", AddressClass.PRIVATE),  # RFC 8215 local-use NAT64
    )
)
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 §2.1


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, when the kernel or a translator will use it.

    IPv4-mapped (``::ffff:10.0.0.1``, RFC 4291 §2.5.5.2) reaches the IPv4 host through a
    dual-stack socket; NAT64 (RFC 6052) and 6to4 (RFC 3056) reach it through a gateway.
    """
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def classify_address(address: str | IPAddress) -> AddressClass:
    """Classify an IP address for the outbound-fetch policy (pure; ``ValueError`` if not an IP)."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return classify_address(embedded)
        for net6, cls in _V6_TABLE:
            if ip in net6:
                return cls
    else:
        for net4, cls in _V4_TABLE:
            if ip in net4:
                return cls
    if ip.is_multicast:
        return AddressClass.MULTICAST
    if ip.is_loopback:
        return AddressClass.LOOPBACK
    if ip.is_link_local:
        return AddressClass.LINK_LOCAL
    if ip.is_reserved:
        return AddressClass.RESERVED
    if not ip.is_global:
        # Documentation, benchmarking, IETF protocol assignments, Teredo and the like
        # (IANA special-purpose registries, RFC 6890): not reachable on the Internet.
        return AddressClass.NON_GLOBAL
    return AddressClass.PUBLIC


def is_loopback_host(host: str) -> bool:
    """A loopback name (``localhost``, and ``*.localhost`` which RFC 6761 §6.3 keeps on this
    machine) or a loopback IP literal (brackets, a trailing dot and case ignored)."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return classify_address(name) is AddressClass.LOOPBACK
    except ValueError:
        return False


def address_allowed(address: str | IPAddress, *, allow_loopback: bool = False) -> bool:
    """Whether the client may connect to ``address``.

    ``allow_loopback`` admits loopback and nothing else: a test flag must not open
    private or link-local ranges (the metadata service) as a side effect.
    """
    cls = classify_address(address)
    return cls is AddressClass.PUBLIC or (allow_loopback and cls is AddressClass.LOOPBACK)
