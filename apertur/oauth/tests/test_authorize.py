"""GET/POST /oauth/authorize (RFC 6749 §4.1.1-4.1.2, RFC 7636 §4.3)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.test import Client

from apertur.core.models import AuditEvent
from apertur.oauth import services
from apertur.oauth.models import AuthorizationCode, Connection
from apertur.oauth.tests.conftest import Flow
from apertur.partners import services as partner_services
from apertur.testing import REDIRECT_URI, authorize_url, make_app, make_user, pkce_pair

pytestmark = pytest.mark.django_db
ISSUER = "http://localhost:8000"  # APERTUR_BASE_URL in the tests


def query(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 302, response.content.decode()[:1000]
    return parse_qs(urlsplit(response["Location"]).query)


def test_consent_page(flow: Flow) -> None:
    response = flow.browser.get(authorize_url(flow.client_id, scope="upload:create project:read"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Snapflow wants to access your Apertur project" in html
    assert "Snapflow Inc." in html and "https://snapflow.example" not in html.split("By Snapflow Inc.")[0]
    assert "See which Apertur plan the project is on" in html  # plan:read, always included and shown
    assert "Create upload sessions" in html
    assert '<label for="project">Project</label>' in html
    assert ">Weddings</option>" in html and ">Team</option>" in html
    assert 'value="allow">Allow</button>' in html and 'value="deny">Deny</button>' in html
    assert response["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert response["Cross-Origin-Opener-Policy"] == "unsafe-none"


def test_single_project_has_no_select(flow: Flow) -> None:
    created = make_app(flow.created.app.partner, name="Other")
    user = make_user()
    from apertur.projects.services import create_project

    create_project(owner=user, name="Only one")
    browser = Client()
    browser.force_login(user)
    html = browser.get(authorize_url(created.app.client_id)).content.decode()
    assert "<select" not in html and "Only one" in html


def test_login_first_then_back_to_the_same_request(flow: Flow) -> None:
    url = authorize_url(flow.client_id, scope="project:read")
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"] == "/login?" + urlencode({"next": url})
    anonymous = Client()
    back = anonymous.post("/login", {"email": "customer@example.com", "password": "correct-horse-battery", "next": url})
    assert back["Location"] == url
    assert anonymous.get(url).status_code == 200


@pytest.mark.parametrize(
    "params",
    [
        {"client_id": "aptr_ci_doesnotexist"},
        {"redirect_uri": "https://evil.example/callback"},
        {"redirect_uri": "https://snapflow.example/callback/"},
        {"redirect_uri": "https://snapflow.example/callback?x=1"},
        {"redirect_uri": "http://snapflow.example/callback"},
        {"redirect_uri": "https://snapflow.example/callback/../evil"},
        {"redirect_uri": "https://SNAPFLOW.example/callback"},
        {"client_id": "aptr_ci_\x00"},  # PostgreSQL refused the NUL in the client lookup: a 500
        # Authlib put an unregistered redirect_uri into its error_description, and building an error whose
        # description holds a character RFC 6749 §4.1.2.1 excludes ('"', '\\', not ASCII) failed: a 500
        {"redirect_uri": 'https://evil.example/"callback"'},
        {"redirect_uri": "https://evil.example/caf\u00e9"},
        {"redirect_uri": "https://snapflow.example/callback\x00"},
    ],
)
def test_bad_client_or_redirect_uri_is_an_error_page_never_a_redirect(flow: Flow, params: dict[str, str]) -> None:
    url = authorize_url(params.pop("client_id", flow.client_id), **params)
    response = flow.browser.get(url)
    assert response.status_code == 400
    assert "Location" not in response
    assert "This connection request cannot continue" in response.content.decode()
    assert AuthorizationCode.objects.count() == 0


def test_missing_redirect_uri_uses_the_only_one_else_error() -> None:
    created = make_app()  # exactly one redirect URI
    user = make_user()
    from apertur.projects.services import create_project

    create_project(owner=user, name="P")
    browser = Client()
    browser.force_login(user)
    url = "/oauth/authorize?" + urlencode({"response_type": "code", "client_id": created.app.client_id, "state": "s"})
    response = browser.post(url, {"decision": "allow"})
    assert response["Location"].startswith(REDIRECT_URI + "?code=")


@pytest.mark.parametrize("decision", ["allow", "deny"])
def test_a_unicode_redirect_uri_is_sent_as_a_uri_the_browser_follows(decision: str) -> None:
    """Redirect URIs are stored exactly as typed, so one may hold non-ASCII characters (an IDN host, a path).
    The Location header carried them raw: Django sends such a header in Latin-1 (or MIME-encoded), which Chromium
    reads as another path (``/c%E4llback``) or refuses (``ERR_INVALID_REDIRECT`` for the host). It must be the
    URI form (RFC 3987 §3.1): UTF-8, percent-encoded, which browsers map back to the same address."""
    from apertur.projects.services import create_project

    registered = "https://exämple.com/cällback"
    created = make_app(redirect_uris=[registered])
    user = make_user()
    create_project(owner=user, name="P")
    browser = Client()
    browser.force_login(user)
    _, challenge = pkce_pair()
    url = authorize_url(
        created.app.client_id, redirect_uri=registered, code_challenge=challenge, code_challenge_method="S256"
    )
    location = browser.post(url, {"decision": decision})["Location"]
    assert location.isascii(), location
    assert location.startswith("https://ex%C3%A4mple.com/c%C3%A4llback?"), location


def test_missing_redirect_uri_with_several_registered_is_an_error(flow: Flow) -> None:
    url = "/oauth/authorize?" + urlencode({"response_type": "code", "client_id": flow.client_id})
    response = flow.browser.get(url)
    assert response.status_code == 400
    assert "Missing" in response.content.decode()


def test_unknown_scope_redirects_invalid_scope_with_state(flow: Flow) -> None:
    q = query(flow.browser.get(authorize_url(flow.client_id, scope="project:read admin:all")))
    assert q["error"] == ["invalid_scope"]
    assert q["state"] == ["st4te"]
    assert "admin:all" in q["error_description"][0]


@pytest.mark.parametrize("separator", ["\t", "\n", "\u3000"])
def test_scopes_are_separated_by_spaces_only(flow: Flow, separator: str) -> None:
    """RFC 6749 §3.3: ``scope = scope-token *( SP scope-token )`` with ``scope-token = 1*NQCHAR`` (%x21, %x23-5B,
    %x5D-7E). Another whitespace character is no separator: the request names an unknown scope. It was split on
    any whitespace, so a malformed scope was granted."""
    q = query(flow.browser.get(authorize_url(flow.client_id, scope=f"project:read{separator}upload:read")))
    assert q["error"] == ["invalid_scope"]
    assert q["state"] == ["st4te"]
    assert AuthorizationCode.objects.count() == 0


def test_alias_sessions_write_is_upload_create(flow: Flow) -> None:
    html = flow.browser.get(authorize_url(flow.client_id, scope="sessions:write destinations:read")).content.decode()
    assert "Create upload sessions" in html
    assert flow.tokens(scope="sessions:write destinations:read")["scopes"] == [
        "plan:read",
        "upload:create",
        "destinations:read",
    ]


@pytest.mark.parametrize(
    ("response_type", "error", "description"),
    [
        ("token", "unsupported_response_type", "response_type must be code."),
        ("code token", "unsupported_response_type", "response_type must be code."),
        # Authlib put the value in the description: a quote or a non-ASCII character made building the error fail
        ('code"', "unsupported_response_type", "response_type must be code."),
        ("c\u00f3de", "unsupported_response_type", "response_type must be code."),
        # RFC 6749 §4.1.2.1: missing is invalid_request; §3.1: an empty parameter counts as omitted
        (None, "invalid_request", "Missing 'response_type': it must be code."),
        ("", "invalid_request", "Missing 'response_type': it must be code."),
    ],
)
def test_missing_or_unsupported_response_type(
    flow: Flow, response_type: str | None, error: str, description: str
) -> None:
    """Authlib reported both as unsupported_response_type, described as "response_type=The response type 'None'
    is not supported by the server. is not supported". Redirected with the state, the client being known."""
    q = query(flow.browser.get(authorize_url(flow.client_id, response_type=response_type)))  # type: ignore[arg-type]
    assert q == {"error": [error], "error_description": [description], "state": ["st4te"], "iss": [ISSUER]}


def test_unsupported_response_type_of_an_unknown_client_is_shown_not_redirected(flow: Flow) -> None:
    response = flow.browser.get(authorize_url("aptr_ci_nobody", response_type="token"))
    assert response.status_code == 400 and "Location" not in response
    assert "response_type must be code." in response.content.decode()


@pytest.mark.parametrize(
    "params",
    [
        {"code_challenge": "x" * 43, "code_challenge_method": "plain"},
        {"code_challenge": "x" * 43},  # no method means plain (RFC 7636 §4.3): refused
        {"code_challenge": "short", "code_challenge_method": "S256"},
    ],
)
def test_pkce_plain_and_malformed_challenges_are_refused(flow: Flow, params: dict[str, str]) -> None:
    q = query(flow.browser.get(authorize_url(flow.client_id, **params)))
    assert q["error"] == ["invalid_request"]
    assert AuthorizationCode.objects.count() == 0


def test_repeated_parameters_are_refused(flow: Flow) -> None:
    # RFC 6749 §3.1: parameters must not repeat. Which value is "the" redirect_uri or state would be
    # ambiguous, so Apertur answers with its own error page rather than redirecting.
    response = flow.browser.get(authorize_url(flow.client_id) + "&state=again")
    assert response.status_code == 400
    assert "Multiple &#x27;state&#x27;" in response.content.decode()


@pytest.mark.parametrize("parameter", ["code_challenge", "code_challenge_method"])
def test_repeated_pkce_parameters_are_refused(flow: Flow, parameter: str) -> None:
    """RFC 6749 §3.1 holds for the PKCE parameters of the authorization request too (RFC 7636 §4.3): which
    challenge the code is bound to would be ambiguous. The client and redirect URI are known, so the error goes
    back to the client (§4.1.2.1), with its state."""
    _, challenge = pkce_pair()
    _, other = pkce_pair()
    url = authorize_url(flow.client_id, code_challenge=challenge, code_challenge_method="S256")
    url += "&" + urlencode({parameter: other if parameter == "code_challenge" else "S256"})
    q = query(flow.browser.post(url, {"decision": "allow", "project": flow.project.public_id}))
    assert q["error"] == ["invalid_request"]
    assert q["error_description"] == [f"Multiple '{parameter}' in request."]
    assert q["state"] == ["st4te"]
    assert AuthorizationCode.objects.count() == 0


def test_repeated_unknown_parameters_are_ignored(flow: Flow) -> None:
    """RFC 6749 §3.1: "The authorization server MUST ignore unrecognized request parameters", repeated or not."""
    assert flow.browser.get(authorize_url(flow.client_id) + "&utm_source=a&utm_source=b").status_code == 200


def test_deny(flow: Flow) -> None:
    q = query(flow.browser.post(authorize_url(flow.client_id), {"decision": "deny"}))
    assert q["error"] == ["access_denied"]
    assert q["state"] == ["st4te"]
    assert "code" not in q
    assert AuthorizationCode.objects.count() == 0
    assert Connection.objects.count() == 0
    assert AuditEvent.objects.filter(action="oauth.consent_denied").count() == 1


def test_allow_binds_the_code_to_everything(flow: Flow) -> None:
    _, challenge = pkce_pair()
    url = authorize_url(flow.client_id, scope="project:read", code_challenge=challenge, code_challenge_method="S256")
    q = query(flow.browser.post(url, {"decision": "allow", "project": flow.other_project.public_id}))
    assert q["state"] == ["st4te"]
    code = AuthorizationCode.objects.get()
    assert code.code_hash != q["code"][0] and len(code.code_hash) == 64
    assert q["code"][0].startswith("oac_")
    assert code.project == flow.other_project and code.user == flow.customer
    assert code.app == flow.created.app
    assert code.redirect_uri == REDIRECT_URI
    assert code.scopes == "plan:read project:read"
    assert code.code_challenge == challenge and code.code_challenge_method == "S256"
    assert (code.expires_at - code.created_at).total_seconds() == 600
    connection = Connection.objects.get()
    assert connection.project == flow.other_project
    assert AuditEvent.objects.filter(action="oauth.consent_granted").count() == 1


def test_allow_for_someone_elses_project_is_refused(flow: Flow) -> None:
    from apertur.projects.services import create_project

    stranger_project = create_project(owner=make_user(), name="Not yours")
    response = flow.browser.post(
        authorize_url(flow.client_id), {"decision": "allow", "project": stranger_project.public_id}
    )
    assert response.status_code == 400
    assert "Choose the project" in response.content.decode()
    assert AuthorizationCode.objects.count() == 0 and Connection.objects.count() == 0


def test_consent_needs_csrf(flow: Flow) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(flow.customer)
    response = browser.post(authorize_url(flow.client_id), {"decision": "allow", "project": flow.project.public_id})
    assert response.status_code == 403
    assert AuthorizationCode.objects.count() == 0


def test_user_without_projects_is_told(flow: Flow) -> None:
    browser = Client()
    browser.force_login(make_user())
    response = browser.get(authorize_url(flow.client_id))
    assert response.status_code == 400
    assert "Create a project in Apertur first" in response.content.decode()


def test_deactivated_app_and_suspended_partner_cannot_authorize(flow: Flow) -> None:
    services.deactivate_app(app=flow.created.app)
    assert flow.browser.get(authorize_url(flow.client_id)).status_code == 400
    services.reactivate_app(app=flow.created.app)
    assert flow.browser.get(authorize_url(flow.client_id)).status_code == 200
    partner_services.suspend(partner=flow.created.app.partner, reviewer=None, reason="Abuse")
    assert flow.browser.get(authorize_url(flow.client_id)).status_code == 400


def test_authorize_is_rate_limited_per_ip(flow: Flow, monkeypatch: pytest.MonkeyPatch) -> None:
    from apertur.core.ratelimit import Limit
    from apertur.oauth import limits

    monkeypatch.setattr(limits, "AUTHORIZE_PER_IP", Limit("t-authorize-ip", 2, 60 * 60))
    url = authorize_url(flow.client_id)
    assert flow.browser.get(url).status_code == 200
    assert flow.browser.get(url).status_code == 200
    response = flow.browser.get(url)
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0


# --- aptr-connect (public key) mode -------------------------------------------------------------------


def sdk_url(key: str, origin: str = "http://partner.localhost:8001", **params: str) -> str:
    query = {"public_key": key, "origin": origin, "scope": "project:read", "state": "sdk-state", **params}
    return "/oauth/authorize?" + urlencode(query)


def popup_message(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.content.decode()[:500]
    assert response["Cross-Origin-Opener-Policy"] == "unsafe-none"
    html = response.content.decode()
    import json
    import re

    match = re.search(r'<script id="aptr-result" type="application/json">(.*?)</script>', html, re.S)
    assert match, html
    origin = re.search(r'data-origin="([^"]*)"', html)
    assert origin
    return {"origin": origin.group(1), **json.loads(match.group(1))}


@pytest.fixture
def sdk_app(flow: Flow) -> Flow:
    services.update_app(
        app=flow.created.app,
        name="Snapflow",
        redirect_uris=["https://snapflow.example/callback"],
        allowed_domains=["*.localhost", "app.snapflow.example"],
    )
    return flow


def test_public_key_popup_posts_code_to_the_validated_origin(sdk_app: Flow) -> None:
    url = sdk_url(sdk_app.created.public_key)
    assert sdk_app.browser.get(url).status_code == 200  # consent
    message = popup_message(sdk_app.browser.post(url, {"decision": "allow", "project": sdk_app.project.public_id}))
    assert message["origin"] == "http://partner.localhost:8001"
    assert message["source"] == "aptr-connect"
    assert message["state"] == "sdk-state"
    assert message["code"].startswith("oac_")
    from apertur.testing import exchange

    response = exchange(Client(), message["code"], sdk_app.client_id, sdk_app.secret)
    assert response.status_code == 200, response.content
    assert response.json()["livemode"] is True


def test_test_public_key_gives_test_mode_tokens(sdk_app: Flow) -> None:
    url = sdk_url(sdk_app.created.test_public_key)
    html = sdk_app.browser.get(url).content.decode()
    assert "Test mode" in html
    message = popup_message(sdk_app.browser.post(url, {"decision": "allow", "project": sdk_app.project.public_id}))
    from apertur.testing import exchange

    body = exchange(Client(), message["code"], sdk_app.client_id, sdk_app.secret).json()
    assert body["livemode"] is False
    plan = Client().get("/api/v1/plan", HTTP_AUTHORIZATION=f"Bearer {body['access_token']}").json()
    assert plan["livemode"] is False


def test_public_key_deny_posts_access_denied(sdk_app: Flow) -> None:
    message = popup_message(sdk_app.browser.post(sdk_url(sdk_app.created.public_key), {"decision": "deny"}))
    assert message["error"] == "access_denied"
    assert message["state"] == "sdk-state"


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://partner.localhost:8001", True),
        ("https://app.snapflow.example", True),
        # A pattern has no scheme, yet it is not every scheme (oauth-apps.md): https, or http on loopback names.
        ("http://app.snapflow.example", False),
        ("https://app.snapflow.example:8443", True),  # ports are ignored
        ("https://snapflow.example", False),
        ("http://localhost:8001", False),
        ("https://evil.example", False),
    ],
)
def test_public_key_origin_check(sdk_app: Flow, origin: str, allowed: bool) -> None:
    response = sdk_app.browser.get(sdk_url(sdk_app.created.public_key, origin=origin))
    if allowed:
        assert response.status_code == 200 and "Allow" in response.content.decode()
    else:
        message = popup_message(response)
        assert message["error"] == "origin_not_allowed"
        assert message["origin"] == origin


def test_unknown_or_regenerated_public_key(sdk_app: Flow) -> None:
    message = popup_message(sdk_app.browser.get(sdk_url("aptr_live_pk_nope")))
    assert message["error"] == "invalid_public_key"
    message = popup_message(sdk_app.browser.get(sdk_url("aptr_live_pk_\x00")))  # PostgreSQL refuses a NUL: a 500
    assert message["error"] == "invalid_public_key"
    services.regenerate_public_key(app=sdk_app.created.app, mode=services.KeyMode.LIVE)
    message = popup_message(sdk_app.browser.get(sdk_url(sdk_app.created.public_key)))
    assert message["error"] == "invalid_public_key"


@pytest.mark.parametrize("limit", ["AUTHORIZE_PER_IP", "AUTHORIZE_PER_CLIENT"])
def test_rate_limited_popup_posts_the_error_to_the_opener(
    sdk_app: Flow, monkeypatch: pytest.MonkeyPatch, limit: str
) -> None:
    """In the SDK's popup a bare JSON 429 would be stranded, and its default COOP ``same-origin`` cuts the popup off
    from the partner's page, which then reports ``user_denied`` as if the user had cancelled. The popup posts
    the error instead (the SDK reports it as ``server_error``), still a 429 with Retry-After."""
    from apertur.core.ratelimit import Limit
    from apertur.oauth import limits

    monkeypatch.setattr(limits, limit, Limit(f"t-{limit}", 1, 60 * 60))
    url = sdk_url(sdk_app.created.public_key)
    assert sdk_app.browser.get(url).status_code == 200
    response = sdk_app.browser.get(url)
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    response.status_code = 200  # popup_message reads the page as the browser does, whatever the status
    message = popup_message(response)
    assert message["error"] == "rate_limited"
    assert message["state"] == "sdk-state"
    assert message["origin"] == "http://partner.localhost:8001"
    # Redirect mode has no opener: the plain 429 as before.
    redirected = sdk_app.browser.get(sdk_url(sdk_app.created.public_key, ux_mode="redirect"))
    assert redirected.status_code == 429 and redirected["Content-Type"] == "application/json"


def test_public_key_redirect_mode(sdk_app: Flow) -> None:
    url = sdk_url(sdk_app.created.public_key, ux_mode="redirect")
    q = query(sdk_app.browser.post(url, {"decision": "allow", "project": sdk_app.project.public_id}))
    assert q["state"] == ["sdk-state"] and q["code"][0].startswith("oac_")


def test_public_key_without_origin_is_an_error_page(sdk_app: Flow) -> None:
    response = sdk_app.browser.get("/oauth/authorize?" + urlencode({"public_key": sdk_app.created.public_key}))
    assert response.status_code == 400
    assert "origin_not_allowed" in response.content.decode()


def test_popup_errors_after_the_origin_check_reach_the_opener(sdk_app: Flow) -> None:
    """An unregistered redirect_uri in SDK mode is reported to the validated opener, not left in the popup."""
    message = popup_message(
        sdk_app.browser.get(sdk_url(sdk_app.created.public_key, redirect_uri="https://evil.example/cb"))
    )
    assert message["error"] == "invalid_request"
    assert message["state"] == "sdk-state"
    assert message["origin"] == "http://partner.localhost:8001"
    browser = Client()
    browser.force_login(make_user())  # no project
    message = popup_message(browser.get(sdk_url(sdk_app.created.public_key)))
    assert message["error"] == "invalid_request"
    assert "Create a project" in message["error_description"]


@pytest.mark.parametrize("case", ["invalid_public_key", "origin_not_allowed"])
def test_redirect_mode_sdk_errors_are_shown_not_posted(sdk_app: Flow, case: str) -> None:
    key = "aptr_live_pk_unknown" if case == "invalid_public_key" else sdk_app.created.public_key
    origin = "https://evil.example" if case == "origin_not_allowed" else "http://partner.localhost:8001"
    response = sdk_app.browser.get(sdk_url(key, origin=origin, ux_mode="redirect"))
    assert response.status_code == 400
    html = response.content.decode()
    assert case in html and "aptr-result" not in html


def test_backslash_origin_cannot_receive_a_code(sdk_app: Flow) -> None:
    """https://evil.com\\.snapflow.example is evil.com to a browser: refused, and never a postMessage target."""
    response = sdk_app.browser.get(
        sdk_url(sdk_app.created.public_key, origin="https://evil.com\\.app.snapflow.example")
    )
    assert response.status_code == 400
    assert "aptr-result" not in response.content.decode()


def test_the_popup_result_page_has_a_title_and_fits_a_phone(sdk_app: Flow) -> None:
    """On a phone the SDK's popup is a tab: the page that hands the code back is laid out for the screen and
    named in the tab list, in case it stays open."""
    url = sdk_url(sdk_app.created.public_key)
    html = sdk_app.browser.post(url, {"decision": "allow", "project": sdk_app.project.public_id}).content.decode()
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert "<title>Returning to the application · Apertur</title>" in html


def test_every_authorization_response_names_the_issuer(flow: Flow, sdk_app: Flow, settings: Any) -> None:
    """RFC 9207 §2: the code and every error sent back to the client carry ``iss``, the metadata's issuer, so a
    client of several authorization servers can tell whose answer it got (mix-up attacks, RFC 9700 §4.4). The
    SDK's popup posts the same parameters. Errors Apertur shows itself (untrusted redirect URI) send nothing."""
    settings.APERTUR_BASE_URL = "https://apertur.example"
    issuer = Client().get("/.well-known/oauth-authorization-server").json()["issuer"]
    assert issuer == "https://apertur.example"
    allow = {"decision": "allow", "project": flow.project.public_id}
    code = query(flow.browser.post(authorize_url(flow.client_id), allow))
    denied = query(flow.browser.post(authorize_url(flow.client_id), {"decision": "deny"}))
    refused = query(flow.browser.get(authorize_url(flow.client_id, scope="admin:all")))
    for q in (code, denied, refused):
        assert q["iss"] == [issuer], q
    assert code["code"][0].startswith("oac_") and denied["error"] == ["access_denied"]
    assert refused["error"] == ["invalid_scope"]

    url = sdk_url(sdk_app.created.public_key)
    posted = popup_message(sdk_app.browser.post(url, {"decision": "allow", "project": sdk_app.project.public_id}))
    assert posted["iss"] == issuer and posted["code"].startswith("oac_")
    posted = popup_message(sdk_app.browser.post(url, {"decision": "deny"}))
    assert posted["iss"] == issuer and posted["error"] == "access_denied"
    posted = popup_message(sdk_app.browser.get(sdk_url("aptr_live_pk_nope")))
    assert posted["iss"] == issuer and posted["error"] == "invalid_public_key"
    redirected = query(
        sdk_app.browser.post(sdk_url(sdk_app.created.public_key, ux_mode="redirect"), {"decision": "deny"})
    )
    assert redirected["iss"] == [issuer]
