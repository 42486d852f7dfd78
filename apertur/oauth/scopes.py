"""The scope registry (ARCHITECTURE section 6): names, plain-word descriptions for the consent page,
aliases, and the one function that turns a requested ``scope`` string into granted scopes.

RFC 6749 §3.3: scopes are space-delimited, case-sensitive strings; the server may grant fewer than asked
(``plan:read`` is always granted here).
"""

from __future__ import annotations

from collections.abc import Iterable

ALWAYS = "plan:read"

SCOPES: dict[str, str] = {
    "plan:read": "See which Apertur plan the project is on and its limits",
    "upload:create": "Create upload sessions (links where guests upload photos)",
    "upload:read": "See the project's upload history",
    "project:read": "See the project's name and details",
    "project:settings": "Change the project's settings",
    "keys:read": "See the project's API keys (never their secret values)",
    "webhooks:manage": "Create, change and delete the project's event webhooks",
    "billing:read": "See the project's billing: plan, subscription and payments",
    "destinations:read": "See where the project's photos are delivered",
}

ALIASES: dict[str, str] = {"sessions:write": "upload:create"}

SUPPORTED: list[str] = [*SCOPES, *ALIASES]


def _printable(text: str) -> str:
    """Only characters RFC 6749 §5.2 allows in error_description (%x20-21 / %x23-5B / %x5D-7E)."""
    return "".join(ch for ch in text if 0x20 <= ord(ch) <= 0x7E and ch not in '"\\')[:200]


class UnknownScope(ValueError):
    def __init__(self, names: list[str]) -> None:
        self.names = names
        super().__init__(_printable(f"Unknown scope: {', '.join(names)}."))


def split(scope: str | None) -> list[str]:
    """The scope tokens of a ``scope`` string. RFC 6749 §3.3: ``scope-token *( SP scope-token )``: only the space
    separates (a tab, a line feed or any other whitespace is inside a token, which then names no scope); repeated,
    leading and trailing spaces are tolerated."""
    return [s for s in (scope or "").split(" ") if s]


def normalize(requested: str | Iterable[str] | None) -> list[str]:
    """Granted scopes for a request, in registry order, aliases resolved, ``plan:read`` included.
    Raises :class:`UnknownScope` naming every unknown entry."""
    names = split(requested) if requested is None or isinstance(requested, str) else list(requested)
    unknown = [n for n in names if n not in SCOPES and n not in ALIASES]
    if unknown:
        raise UnknownScope(unknown)
    wanted = {ALIASES.get(n, n) for n in names} | {ALWAYS}
    return [s for s in SCOPES if s in wanted]


def to_string(scopes: Iterable[str]) -> str:
    return " ".join(scopes)


def describe(scopes: Iterable[str]) -> list[tuple[str, str]]:
    return [(s, SCOPES[s]) for s in scopes]
