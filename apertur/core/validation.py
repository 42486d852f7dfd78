"""Input rules shared by several domains, each raising ``ValidationFailed`` with the field named."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from apertur.core.errors import ValidationFailed

MAX_WEBSITE_LENGTH = 300


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
    """Trimmed text whose length is within [low, high] (``collapse_spaces`` also folds inner runs)."""
    text = " ".join(value.split()) if collapse_spaces else value.strip()
    if not low <= len(text) <= high:
        raise error(message, field=field)
    return text
