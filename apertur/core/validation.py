"""Input rules shared by several domains, each raising ``ValidationFailed`` with the field named."""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from apertur.core.errors import AperturError, ValidationFailed

MAX_WEBSITE_LENGTH = 300

T = TypeVar("T")


class Checks:
    """Run the checks of several fields (or list entries) and report every problem at once, so that a form
    shows all its mistakes in one answer instead of one per submit.

    ``run`` returns what the check returns, or ``fallback`` when it raised ``ValidationFailed``; ``done``
    then raises the first problem (its class, code, field and message, as if it had been the only one) with
    the others in its ``others``. A check that itself found several problems contributes all of them."""

    def __init__(self) -> None:
        self._failed: list[AperturError] = []

    def run(self, check: Callable[[], T], fallback: T) -> T:
        try:
            return check()
        except ValidationFailed as exc:
            self._failed.extend(exc.problems)
            return fallback

    @property
    def failed(self) -> bool:
        return bool(self._failed)

    def done(self) -> None:
        if self._failed:
            first, *rest = self._failed
            first.others = list(rest)
            raise first


def loads_json(raw: str | bytes, *, object_pairs_hook: Callable[[list[tuple[str, Any]]], Any] | None = None) -> Any:
    """``json.loads`` for a body someone else sent: every way it can fail is a ``ValueError`` (JSON syntax,
    bytes that are not UTF-8, and a document nested deeper than the parser recurses, for which ``json`` raises
    ``RecursionError``: ``[`` × 100,000 was a 500 wherever a body is parsed)."""
    try:
        return json.loads(raw, object_pairs_hook=object_pairs_hook)
    except RecursionError as exc:
        raise ValueError("JSON nested too deep") from exc


def has_nul(value: str) -> bool:
    """A NUL is in no id, token, name or parameter Apertur has, and PostgreSQL refuses it in any text it is
    given (a 500): a value holding one is refused or simply unknown, never sent to the database."""
    return "\x00" in value


# What no stored text can hold: a NUL (PostgreSQL refuses it in text and ``jsonb``) and a lone UTF-16 surrogate, which
# JSON can escape (\ud800) but UTF-8 cannot encode (every database driver raised UnicodeEncodeError: a 500). A valid
# pair (\ud83d\ude00) is one character once parsed, never a surrogate.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def without_nul(value: Any) -> Any:
    """A copy of a parsed JSON document with every NUL and every lone surrogate in its strings (member names
    included) replaced by U+FFFD, for a document that must be stored whatever it holds (a provider's signed event:
    refusing it would lose it; PostgreSQL's ``jsonb`` refuses ``\\u0000`` and UTF-8 has no surrogates). Anything
    else is returned as it is."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_nul(item) for item in value]
    return value


def clean_website(value: str, *, field: str = "website", error: type[ValidationFailed] = ValidationFailed) -> str:
    """A public ``http(s)://`` address of at most 300 characters, trimmed."""
    site = value.strip()
    try:
        URLValidator(schemes=["http", "https"])(site)
    except ValidationError as exc:
        raise error("Enter the website as a full address, like https://example.com.", field=field) from exc
    if len(site) > MAX_WEBSITE_LENGTH:
        raise error(f"The website address is at most {MAX_WEBSITE_LENGTH} characters.", field=field)
    return site


# Characters that change how the text around them reads while showing nothing: C0 and C1 controls and the
# bidirectional marks, embeddings, overrides and isolates (Unicode TR9). In a name shown to other people (an app's
# name on the consent page, a company name to staff) U+202E reverses the page's own words after it.
_HIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
HIDDEN_MESSAGE = "Remove the control characters or text-direction marks (such as U+202E): they cannot be shown."


def has_hidden_controls(value: str) -> bool:
    """Does ``value`` hold a control or text-direction character? Tab and line breaks are not counted."""
    return _HIDDEN.search(value) is not None


def clean_text(
    value: str,
    *,
    low: int,
    high: int,
    message: str,
    field: str,
    error: type[ValidationFailed] = ValidationFailed,
    collapse_spaces: bool = False,
) -> str:
    """Trimmed text whose length is within [low, high] (``collapse_spaces`` also folds inner runs), with no control
    or text-direction character (tab and line breaks aside)."""
    text = " ".join(value.split()) if collapse_spaces else value.strip()
    if not low <= len(text) <= high:
        raise error(message, field=field)
    if has_hidden_controls(text):
        raise error(HIDDEN_MESSAGE, field=field)
    return text


MAX_URL_LENGTH = 2000
_BRACKETED_HOST = re.compile(r"\[[^\[\]]+\](:[0-9]*)?")


def idna_host(host: str) -> str:
    """Lowercase, no trailing dot, internationalised labels in their ASCII (punycode) form."""
    host = host.strip().lower().rstrip(".")
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def is_loopback_host(host: str) -> bool:
    """``localhost``, any ``*.localhost`` name (RFC 6761 §6.3) and loopback IP literals."""
    host = idna_host(host)
    if host == "localhost" or host.endswith(".localhost"):
        return True
    ip = ip_literal(host)
    return ip is not None and ip.is_loopback


def check_callback_url(value: str, *, noun: str, field: str, error: type[ValidationFailed] = ValidationFailed) -> str:
    """A URL Apertur sends users or data to (redirect URIs, webhook endpoints): absolute, no fragment, no
    credentials, no wildcard, and ``https`` unless the host is a loopback name used in development.
    Returned exactly as given."""
    url = value.strip()
    if not url:
        raise error(f"Enter a {noun}.", field=field)
    # Counted in UTF-8 bytes, as stored: a non-ASCII character counts as 2 to 4 (its index entry must fit
    # PostgreSQL's B-tree limit, about 2,700 bytes, or the save fails).
    if len(url.encode("utf-8", "surrogatepass")) > MAX_URL_LENGTH:
        raise error(
            f"{url[:60]}…: a {noun} is at most {MAX_URL_LENGTH} characters (a non-ASCII character counts as 2 to 4).",
            field=field,
        )
    if any(ch.isspace() for ch in url) or any(ord(ch) < 0x20 for ch in url):
        raise error(f"{url}: a {noun} cannot contain spaces.", field=field)
    try:
        parts = urlsplit(url)
        port = parts.port
        # An IPv6 literal is the whole host: urlsplit reads "[::1]x" as ::1, which a browser refuses (WHATWG URL).
        if "[" in parts.netloc and not _BRACKETED_HOST.fullmatch(parts.netloc.rpartition("@")[2]):
            raise ValueError("nothing may follow an IPv6 address's ] but :port")
    except ValueError as exc:
        raise error(f"{url}: this is not a valid URL ({exc}).", field=field) from exc
    if not parts.scheme or not parts.netloc:
        raise error(f"{url}: a {noun} must be absolute, like https://your-app.com/callback.", field=field)
    if parts.scheme not in {"https", "http"}:
        raise error(f"{url}: the scheme must be https.", field=field)
    if "#" in url:
        raise error(f"{url}: a {noun} cannot contain a fragment (#…).", field=field)
    if parts.username is not None or parts.password is not None:
        raise error(f"{url}: a {noun} cannot contain a user name or password.", field=field)
    host = parts.hostname or ""
    if not host or "*" in host:
        raise error(f"{url}: the host must be a full domain name; wildcards are not allowed.", field=field)
    if ip_literal(host) is None:
        try:
            # What the resolver does with the name (socket.getaddrinfo encodes it so): a label that is empty or over
            # 63 characters (RFC 1035 §2.3.4) is no name any lookup can find, and its UnicodeError was a 500.
            encoded = host.encode("idna")
        except UnicodeError as exc:
            raise error(
                f"{url}: {host} is not a valid host name (each part between dots has 1 to 63 characters).",
                field=field,
            ) from exc
        if len(encoded.rstrip(b".")) > 253:  # the whole name, RFC 1035 §2.3.4 (255 octets on the wire)
            raise error(f"{url[:80]}…: this is not a valid host name (at most 253 characters).", field=field)
    if port == 0:
        raise error(f"{url}: port 0 is not a valid port.", field=field)
    if parts.scheme == "http" and not is_loopback_host(host):
        raise error(
            f"{url}: {noun}s must use https. Plain http is allowed only for localhost, "
            "*.localhost, 127.0.0.1 and [::1] during development.",
            field=field,
        )
    return url
