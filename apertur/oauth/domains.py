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

import re
from collections.abc import Iterable
from functools import partial
from urllib.parse import urlsplit

from apertur.core.errors import ValidationFailed
from apertur.core.validation import Checks, check_callback_url, idna_host, ip_literal, is_loopback_host


class InvalidRedirectURI(ValidationFailed):
    code = "invalid_redirect_uri"


class InvalidDomainPattern(ValidationFailed):
    code = "invalid_allowed_domain"


_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")  # used with fullmatch: $ also matches before a final "\n"


# --- redirect URIs (RFC 6749 §3.1.2) ----------------------------------------------------------------


def validate_redirect_uri(uri: str) -> str:
    """Return the URI unchanged if it may be registered, else raise :class:`InvalidRedirectURI` saying why.

    RFC 6749 §3.1.2: absolute, no fragment. §3.1.2.1 and RFC 8252 §8.3: TLS required, except on loopback
    hosts used in development. Matching at authorization time is exact (RFC 6749 §3.1.2.3), so the URI is
    stored exactly as given, with no normalisation that could make two different strings equal.
    """
    return check_callback_url(uri, noun="redirect URI", field="redirect_uris", error=InvalidRedirectURI)


def validate_redirect_uris(uris: Iterable[str]) -> list[str]:
    """Validate each non-blank entry (every bad one is reported), drop exact duplicates, require at least one."""
    checks = Checks()
    cleaned: list[str] = []
    for raw in uris:
        if not raw.strip():
            continue
        value = checks.run(partial(validate_redirect_uri, raw), fallback="")
        if value and value not in cleaned:
            cleaned.append(value)
    checks.done()
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
    ip = ip_literal(raw)
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
    host = idna_host(body)
    labels = host.split(".")
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidDomainPattern(f"{raw}: this is not a valid domain name.", field=field)
    if labels[-1].isdigit():
        raise InvalidDomainPattern(f"{raw}: this is not a valid domain name.", field=field)
    if wildcard and len(labels) < 2 and host != "localhost":
        raise InvalidDomainPattern(
            f"{raw}: a wildcard must be followed by a registrable domain, like *.example.com.", field=field
        )
    return f"*.{host}" if wildcard else host


def validate_domain_patterns(patterns: Iterable[str]) -> list[str]:
    """Normalise each non-blank entry (every bad one is reported) and drop duplicates."""
    checks = Checks()
    cleaned: list[str] = []
    for raw in patterns:
        if not raw.strip():
            continue
        value = checks.run(partial(validate_domain_pattern, raw), fallback="")
        if value and value not in cleaned:
            cleaned.append(value)
    checks.done()
    if len(cleaned) > 50:
        raise InvalidDomainPattern("An app can have at most 50 allowed domains.", field="allowed_domains")
    return cleaned


def host_matches(host: str, pattern: str) -> bool:
    """Does a (normalised) ``pattern`` cover ``host``? ``*.d`` covers every subdomain of ``d`` at any
    depth but never ``d`` itself; any other pattern covers exactly itself."""
    host = idna_host(host)
    ip = ip_literal(host)
    if ip is not None:
        host = f"[{ip.compressed}]" if ip.version == 6 else ip.compressed
    if pattern.startswith("*."):
        suffix = pattern[1:]  # ".example.com"
        return host.endswith(suffix) and len(host) > len(suffix)
    return host == pattern


_ORIGIN = re.compile(r"^(https?)://([a-z0-9](?:[a-z0-9.-]*[a-z0-9])?\.?|\[[0-9a-f:.]+\])(?::([0-9]{1,5}))?/?$")


def canonical_origin(value: str) -> str | None:
    """``scheme://host[:port]`` rebuilt from a strictly parsed origin, or None.

    Only letters, digits, dots and hyphens (or a bracketed IPv6 literal) may make up the host: browsers
    read characters such as ``\\`` differently from Python's URL parser (``https://evil.com\\.good.com``
    is evil.com to a browser), so anything outside the strict grammar is refused, and only the rebuilt
    value is ever used as a postMessage target."""
    match = _ORIGIN.match(value.strip().lower())
    if match is None:
        return None
    scheme, host, port = match.groups()
    if port is not None and not 0 < int(port) <= 65535:
        return None
    if host.startswith("[") and ip_literal(host) is None:
        return None
    return f"{scheme}://{host}" + (f":{port}" if port else "")


def origin_allowed(origin: str, patterns: Iterable[str]) -> bool:
    """The allowed-domain check for a browser ``Origin`` (``scheme://host[:port]``).

    The origin must be canonical (see :func:`canonical_origin`). An empty pattern list then allows it;
    otherwise it must be ``https`` (or ``http`` on a loopback name) and its host must match one pattern
    (ports ignored).
    """
    canonical = canonical_origin(origin)
    if canonical is None:
        return False
    pattern_list = list(patterns)
    if not pattern_list:
        return True
    parts = urlsplit(canonical)
    host = parts.hostname or ""
    if parts.scheme == "http" and not is_loopback_host(host):
        return False
    return any(host_matches(host, p) for p in pattern_list)
