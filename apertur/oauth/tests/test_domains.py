"""The allowed-domain matcher and redirect URI rules (ARCHITECTURE section 6, the SDK doc's table)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apertur.oauth.domains import (
    InvalidDomainPattern,
    InvalidRedirectURI,
    host_matches,
    origin_allowed,
    validate_domain_pattern,
    validate_domain_patterns,
    validate_redirect_uri,
    validate_redirect_uris,
)

# Every row of the seed table: (pattern, origins that match, origins that do not).
SEED_TABLE = [
    ("example.com", ["https://example.com"], ["https://app.example.com"]),
    (
        "*.example.com",
        ["https://app.example.com", "https://staging.app.example.com"],
        ["https://example.com", "https://other.com"],
    ),
    ("*.localhost", ["http://app.localhost"], ["http://localhost"]),
]


@pytest.mark.parametrize(("pattern", "matches", "misses"), SEED_TABLE)
def test_seed_table(pattern: str, matches: list[str], misses: list[str]) -> None:
    for origin in matches:
        assert origin_allowed(origin, [pattern]), origin
    for origin in misses:
        assert not origin_allowed(origin, [pattern]), origin


def test_empty_list_allows_every_origin() -> None:
    assert origin_allowed("https://anything.example", [])
    assert origin_allowed("http://evil.test", [])


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://example.com:8443", True),  # ports are ignored
        ("http://example.com", False),  # http only for loopback names
        ("http://app.localhost:8001", True),
        ("https://app.localhost", True),
        ("ftp://example.com", False),
        ("null", False),
        ("https://EXAMPLE.com", True),  # hosts compare case-insensitively
        ("https://example.com.", True),  # a trailing dot names the same host
        ("https://example.com.evil.test", False),
        ("https://notexample.com", False),
        ("https://example.com/path", False),  # an Origin never has a path
        ("https://user@example.com", False),
        ("https://example.com:99999", False),
    ],
)
def test_origin_edge_cases(origin: str, allowed: bool) -> None:
    assert origin_allowed(origin, ["example.com", "*.localhost"]) is allowed


def test_wildcard_does_not_match_suffix_without_dot() -> None:
    assert not host_matches("badexample.com", "*.example.com")
    assert host_matches("a.b.c.example.com", "*.example.com")


def test_loopback_ip_literals() -> None:
    assert origin_allowed("http://127.0.0.1:3000", ["127.0.0.1"])
    assert origin_allowed("http://[::1]:3000", ["[::1]"])
    assert not origin_allowed("http://10.0.0.1", ["10.0.0.1"])  # http only on loopback
    assert origin_allowed("https://10.0.0.1", ["10.0.0.1"])


@pytest.mark.parametrize(
    ("pattern", "normalised"),
    [
        ("example.com", "example.com"),
        ("  Example.COM ", "example.com"),
        ("*.example.com", "*.example.com"),
        ("*.localhost", "*.localhost"),
        ("localhost", "localhost"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("127.0.0.1", "127.0.0.1"),
        ("::1", "[::1]"),
    ],
)
def test_valid_patterns_are_normalised(pattern: str, normalised: str) -> None:
    assert validate_domain_pattern(pattern) == normalised


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("https://example.com", "without a scheme"),
        ("example.com/app", "without a path"),
        ("*", "bare *"),
        ("app.*.example.com", "only as the whole first label"),
        ("*example.com", "only as the whole first label"),
        ("a*.example.com", "only as the whole first label"),
        ("*.*.example.com", "only as the whole first label"),
        ("example.com:8080", "ports are ignored"),
        ("exa mple.com", "not a valid domain"),
        ("-bad.example.com", "not a valid domain"),
        ("example..com", "not a valid domain"),
        ("*.com", "registrable domain"),
        ("", "Enter a domain"),
        ("user@example.com", "without a path, query or user name"),
        # A label's regex once ended in $, which also matches before a final newline: "app\n.example.com" (from
        # `apertur app create --allowed-domain`) was stored as a pattern no origin can ever match.
        ("app\n.example.com", "not a valid domain"),
        ("*.app\n.example.com", "not a valid domain"),
    ],
)
def test_malformed_patterns_say_why(pattern: str, why: str) -> None:
    with pytest.raises(InvalidDomainPattern) as info:
        validate_domain_pattern(pattern)
    assert why in info.value.message
    assert info.value.code == "invalid_allowed_domain"


def test_pattern_list_dedupes_and_skips_blanks() -> None:
    assert validate_domain_patterns(["example.com", "", "EXAMPLE.com", "*.localhost"]) == [
        "example.com",
        "*.localhost",
    ]


# --- property tests ----------------------------------------------------------------------------------

label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
tld = st.from_regex(r"[a-z]{2,6}", fullmatch=True)
domain = st.builds(lambda labels, end: ".".join([*labels, end]), st.lists(label, min_size=1, max_size=3), tld)
port = st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}"))


@given(sub=st.lists(label, min_size=1, max_size=3), base=domain, p=port)
def test_wildcard_matches_any_depth_never_apex(sub: list[str], base: str, p: str) -> None:
    pattern = validate_domain_pattern(f"*.{base}")
    assert origin_allowed(f"https://{'.'.join(sub)}.{base}{p}", [pattern])
    assert not origin_allowed(f"https://{base}{p}", [pattern])


@given(base=domain, other=domain, p=port)
def test_exact_pattern_matches_only_itself(base: str, other: str, p: str) -> None:
    pattern = validate_domain_pattern(base)
    assert origin_allowed(f"https://{base}{p}", [pattern])
    assert origin_allowed(f"https://{other}", [pattern]) is (other == base)
    assert not origin_allowed(f"https://x.{base}", [pattern])


@given(base=domain, sub=label)
def test_http_refused_off_loopback(base: str, sub: str) -> None:
    # Names that end in .localhost are loopback by definition (RFC 6761): exclude them.
    if base.endswith("localhost"):
        return
    assert not origin_allowed(f"http://{sub}.{base}", [f"*.{base}"])


@given(sub=label, p=port)
def test_localhost_wildcard_over_http(sub: str, p: str) -> None:
    assert origin_allowed(f"http://{sub}.localhost{p}", ["*.localhost"])
    assert not origin_allowed(f"http://localhost{p}", ["*.localhost"])


@given(text=st.text(max_size=40))
def test_validator_never_crashes_and_output_is_a_fixed_point(text: str) -> None:
    try:
        normalised = validate_domain_pattern(text)
    except InvalidDomainPattern:
        return
    assert validate_domain_pattern(normalised) == normalised


# --- redirect URIs -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "https://your-app.com/callback",
        "https://your-app.com/callback?tenant=1",
        "http://localhost:3000/callback",
        "http://127.0.0.1:8080/cb",
        "http://[::1]:8080/cb",
        "http://partner.localhost:8001/callback",
    ],
)
def test_valid_redirect_uris(uri: str) -> None:
    assert validate_redirect_uri(uri) == uri


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("/callback", "must be absolute"),
        ("your-app.com/callback", "must be absolute"),
        ("https://your-app.com/callback#done", "fragment"),
        ("http://your-app.com/callback", "must use https"),
        ("javascript:alert(1)", "must be absolute"),
        ("ftp://your-app.com/cb", "scheme must be https"),
        ("https://user:pw@your-app.com/cb", "user name or password"),
        ("https://*.your-app.com/cb", "wildcards are not allowed"),
        ("https://your app.com/cb", "cannot contain spaces"),
        ("https://your-app.com:notaport/cb", "not a valid URL"),
        # Text after an IPv6 literal's bracket: Python reads the host as ::1, a browser refuses the URL.
        ("http://[::1]x/cb", "not a valid URL"),
        ("https://[2001:db8::1]evil.example/cb", "not a valid URL"),
        # A name is at most 253 characters (RFC 1035 §2.3.4), whatever its labels: no lookup finds a longer one.
        ("https://" + ".".join(["a" * 60] * 5) + ".example/cb", "not a valid host name"),
    ],
)
def test_invalid_redirect_uris_say_why(uri: str, why: str) -> None:
    with pytest.raises(InvalidRedirectURI) as info:
        validate_redirect_uri(uri)
    assert why in info.value.message


def test_redirect_uri_list_requires_one() -> None:
    with pytest.raises(InvalidRedirectURI, match="at least one"):
        validate_redirect_uris(["", "  "])


def test_redirect_uris_are_not_normalised() -> None:
    # Exact matching later (RFC 6749 §3.1.2.3) depends on storing what was typed.
    assert validate_redirect_uris(["https://a.example/cb", "https://a.example/cb/"]) == [
        "https://a.example/cb",
        "https://a.example/cb/",
    ]


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.com\\.example.com",  # a browser reads this host as evil.com
        "https://evil.com%2e.example.com",
        "https://evil.com .example.com",
    ],
)
def test_origins_outside_the_strict_grammar_are_refused(origin: str) -> None:
    assert not origin_allowed(origin, ["*.example.com"])
    assert not origin_allowed(origin, [])


def test_canonical_origin() -> None:
    from apertur.oauth.domains import canonical_origin

    assert canonical_origin("HTTPS://App.Example.com:443/") == "https://app.example.com:443"
    assert canonical_origin("http://[::1]:3000") == "http://[::1]:3000"
    assert canonical_origin("https://evil.com\\.example.com") is None
    # A port in another script's digits ("٤٤٣") passed the check and was kept in the origin a postMessage targets.
    assert canonical_origin("https://app.example.com:\u0664\u0664\u0663") is None
    assert canonical_origin("https://a.example.com:99999") is None
    assert canonical_origin("javascript:alert(1)") is None
