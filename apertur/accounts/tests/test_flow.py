from __future__ import annotations

import pytest
from django.test import RequestFactory

from apertur.accounts.flow import in_authorize_flow, next_query, safe_next


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/oauth/authorize?public_key=x", "/oauth/authorize?public_key=x"),
        ("/projects/", "/projects/"),
        ("", "/"),
        ("https://evil.example/", "/"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        # Relative: redirect() reads a string without "/" or "." as a view name (NoReverseMatch, a 500).
        ("a%00b", "/"),
        ("projects", "/"),
        ("../../etc/passwd", "/"),
    ],
)
def test_safe_next_keeps_only_same_site_paths(target: str, expected: str) -> None:
    assert safe_next(RequestFactory().get("/login", {"next": target})) == expected


def test_next_query_is_empty_for_the_home_page() -> None:
    assert next_query(RequestFactory().get("/login")) == ""
    assert next_query(RequestFactory().get("/login", {"next": "/"})) == ""
    assert next_query(RequestFactory().get("/login", {"next": "/a?b=c"})) == "?next=%2Fa%3Fb%3Dc"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/oauth/authorize?client_id=x", True),
        ("/oauth/authorize", True),
        ("/oauth/authorized", False),
        ("/projects/?x=/oauth/authorize", False),
        ("https://evil.example/oauth/authorize", False),
    ],
)
def test_in_authorize_flow(target: str, expected: bool) -> None:
    assert in_authorize_flow(RequestFactory().get("/login", {"next": target})) is expected
