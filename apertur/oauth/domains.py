"""Redirect URI rules and allowed-domain patterns: the one place both are decided.

Allowed domains follow the table in the aptr-connect docs (ARCHITECTURE section 6):

============== ======================================== ====================
pattern        matches                                  does not match
============== ======================================== ====================
example.com    example.com                              app.example.com
*.example.com  app.example.com, staging.app.example.com example.com, other.com
*.localhost    app.localhost                            localhost
============== ======================================== ====================

An empty list allows every origin. Ports are ignored. An origin's scheme must be ``https``, or ``http``
for loopback names (``localhost``, ``*.localhost``, ``127.0.0.1``, ``[::1]``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from apertur.core.errors import ValidationFailed


class InvalidRedirectURI(ValidationFailed):
    code = "invalid_redirect_uri"


class InvalidDomainPattern(ValidationFailed):
    code = "invalid_allowed_domain"


_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
MAX_URI_LENGTH = 2000


def _idna(host: str) -> str:
    """Lowercase, no trailing dot, internationalised labels in their ASCII (punycode) form."""
    host = host.strip().lower().rstrip(".")
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def is_loopback_host(host: str) -> bool:
    """``localhost``, any ``*.localhost`` name (RFC 6761 §6.3) and loopback IP literals."""
    host = _idna(host)
    if host == "localhost" or host.endswith(".localhost"):
        return True
    ip = _ip(host)
    return ip is not None and ip.is_loopback


# --- redirect URIs (RFC 6749 §3.1.2) ----------------------------------------------------------------


def validate_redirect_uri(uri: str) -> str:
    """Return the URI unchanged if it may be registered, else raise :class:`InvalidRedirectURI` saying why.

    RFC 6749 §3.1.2: absolute, no fragment. §3.1.2.1 and RFC 8252 §8.3: TLS required, except on loopback
    hosts used in development. Matching at authorization time is exact (RFC 6749 §3.1.2.3), so the URI is
    stored exactly as given, with no normalisation that could make two different strings equal.
    """
    value = uri.strip()
    if not value:
        raise InvalidRedirectURI("Enter a redirect URI.", field="redirect_uris")
    if len(value) > MAX_URI_LENGTH:
        raise InvalidRedirectURI(
            f"{value[:60]}…: a redirect URI is at most {MAX_URI_LENGTH} characters.", field="redirect_uris"
        )
    if any(ch.isspace() for ch in value) or any(ord(ch) < 0x20 for ch in value):
        raise InvalidRedirectURI(f"{value}: a redirect URI cannot contain spaces.", field="redirect_uris")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise InvalidRedirectURI(f"{value}: this is not a valid URL ({exc}).", field="redirect_uris") from exc
    if not parts.scheme or not parts.netloc:
        raise InvalidRedirectURI(
            f"{value}: a redirect URI must be absolute, like https://your-app.com/callback.",
            field="redirect_uris",
        )
    if parts.scheme not in {"https", "http"}:
        raise InvalidRedirectURI(f"{value}: the scheme must be https.", field="redirect_uris")
    if "#" in value:
        raise InvalidRedirectURI(f"{value}: a redirect URI cannot contain a fragment (#…).", field="redirect_uris")
    if parts.username is not None or parts.password is not None:
        raise InvalidRedirectURI(
            f"{value}: a redirect URI cannot contain a user name or password.", field="redirect_uris"
        )
    host = parts.hostname or ""
    if not host or "*" in host:
        raise InvalidRedirectURI(
            f"{value}: the host must be a full domain name; wildcards are not allowed.", field="redirect_uris"
        )
    if port == 0:
        raise InvalidRedirectURI(f"{value}: port 0 is not a valid port.", field="redirect_uris")
    if parts.scheme == "http" and not is_loopback_host(host):
        raise InvalidRedirectURI(
            f"{value}: redirect URIs must use https. Plain http is allowed only for localhost, "
            "*.localhost, 127.0.0.1 and [::1] during development.",
            field="redirect_uris",
        )
    return value


def validate_redirect_uris(uris: Iterable[str]) -> list[str]:
    """Validate each non-blank entry, drop exact duplicates, require at least one."""
    cleaned: list[str] = []
    for raw in uris:
        if not raw.strip():
            continue
        value = validate_redirect_uri(raw)
        if value not in cleaned:
            cleaned.append(value)
    if not cleaned:
        raise InvalidRedirectURI("Add at least one redirect URI.", field="redirect_uris")
    if len(cleaned) > 20:
        raise InvalidRedirectURI("An app can have at most 20 redirect URIs.", field="redirect_uris")
    return cleaned


# --- allowed domains ---------------------------------------------------------------------------------


def validate_domain_pattern(pattern: str) -> str:
    """Normalise a pattern (lowercase, punycode) or raise :class:`InvalidDomainPattern` saying why."""
    raw = pattern.strip()
    field = "allowed_domains"
    if not raw:
        raise InvalidDomainPattern("Enter a domain.", field=field)
    if "://" in raw:
        raise InvalidDomainPattern(
            f"{raw}: enter a domain without a scheme, like example.com (not https://example.com).",
            field=field,
        )
    if any(ch in raw for ch in "/?#@"):
        raise InvalidDomainPattern(f"{raw}: enter a domain only, without a path, query or user name.", field=field)
    if raw == "*" or raw == "*.":
        raise InvalidDomainPattern(
            f"{raw}: a bare * would allow every site. Leave the list empty to allow all origins during development.",
            field=field,
        )
    ip = _ip(raw)
    if ip is not None:
        return f"[{ip.compressed}]" if ip.version == 6 else ip.compressed
    if ":" in raw:
        raise InvalidDomainPattern(
            f"{raw}: ports are ignored when matching; enter the domain without :port.", field=field
        )
    wildcard = raw.startswith("*.")
    body = raw[2:] if wildcard else raw
    if "*" in body:
        raise InvalidDomainPattern(
            f"{raw}: a wildcard is allowed only as the whole first label, like *.example.com.", field=field
        )
    host = _idna(body)
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        raise InvalidDomainPattern(f"{raw}: this is not a valid domain name.", field=field)
    if labels[-1].isdigit():
        raise InvalidDomainPattern(f"{raw}: this is not a valid domain name.", field=field)
    if wildcard and len(labels) < 2 and host != "localhost":
        raise InvalidDomainPattern(
            f"{raw}: a wildcard must be followed by a registrable domain, like *.example.com.", field=field
        )
    return f"*.{host}" if wildcard else host


def validate_domain_patterns(patterns: Iterable[str]) -> list[str]:
    cleaned: list[str] = []
    for raw in patterns:
        if not raw.strip():
            continue
        value = validate_domain_pattern(raw)
        if value not in cleaned:
            cleaned.append(value)
    if len(cleaned) > 50:
        raise InvalidDomainPattern("An app can have at most 50 allowed domains.", field="allowed_domains")
    return cleaned


def host_matches(host: str, pattern: str) -> bool:
    """Does a (normalised) ``pattern`` cover ``host``? ``*.d`` covers every subdomain of ``d`` at any
    depth but never ``d`` itself; any other pattern covers exactly itself."""
    host = _idna(host)
    ip = _ip(host)
    if ip is not None:
        host = f"[{ip.compressed}]" if ip.version == 6 else ip.compressed
    if pattern.startswith("*."):
        suffix = pattern[1:]  # ".example.com"
        return host.endswith(suffix) and len(host) > len(suffix)
    return host == pattern


def origin_allowed(origin: str, patterns: Iterable[str]) -> bool:
    """The allowed-domain check for a browser ``Origin`` (``scheme://host[:port]``).

    An empty pattern list allows every origin. Otherwise the origin must be a well-formed https origin
    (or http on a loopback name) whose host matches one pattern; the port is ignored.
    """
    pattern_list = list(patterns)
    if not pattern_list:
        return True
    try:
        parts = urlsplit(origin.strip())
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    host = parts.hostname
    if not host or parts.path not in {"", "/"} or parts.query or parts.fragment or parts.username:
        return False
    if parts.scheme == "http":
        if not is_loopback_host(host):
            return False
    elif parts.scheme != "https":
        return False
    return any(host_matches(host, p) for p in pattern_list)
