"""Values for CSV files people open in a spreadsheet: one rule for every export."""

from __future__ import annotations

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def cell(value: str) -> str:
    """Text someone else chose (project names, company names, emails) must not run as a formula when the
    file is opened in a spreadsheet (OWASP "CSV injection"): it is prefixed with a quote."""
    return f"'{value}" if value[:1] in _FORMULA_STARTS else value
