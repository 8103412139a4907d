"""OpenPGP key discovery: WKD, a verifying keyserver, Autocrypt headers, and their cache."""

from sealmail.keys.autocrypt import (
    AutocryptHeader,
    AutocryptHeaderError,
    PreferEncrypt,
    parse_autocrypt_header,
    select_autocrypt_header,
)
from sealmail.keys.cache import (
    DiscoveryCache,
    DiscoveryEntry,
    DiscoveryStatus,
    DiscoveryTtl,
    InMemoryDiscoveryCache,
)
from sealmail.keys.vks import VksResult, fetch_vks
from sealmail.keys.wkd import WkdResult, fetch_wkd, wkd_urls

__all__ = [
    "AutocryptHeader",
    "AutocryptHeaderError",
    "DiscoveryCache",
    "DiscoveryEntry",
    "DiscoveryStatus",
    "DiscoveryTtl",
    "InMemoryDiscoveryCache",
    "PreferEncrypt",
    "VksResult",
    "WkdResult",
    "fetch_vks",
    "fetch_wkd",
    "parse_autocrypt_header",
    "select_autocrypt_header",
    "wkd_urls",
]
