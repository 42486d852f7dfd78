"""docs/oauth.md is executable: every ```sh example that calls curl runs with the real curl against a live
server, with real credentials, codes and tokens, and must print the JSON the guide promises. The other
snippets (PKCE values, the authorization URL, the JSON samples) are checked against the server too."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import string
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from apertur.projects.models import Plan
from apertur.projects.plans import PLANS
from apertur.projects.services import create_project
from apertur.testing import REDIRECT_URI, exchange, get_code, make_app, make_user, pkce_pair

pytestmark = pytest.mark.django_db(transaction=True)

DOC = Path(__file__).resolve().parents[1] / "docs" / "oauth.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
CURL = "/usr/bin/curl"
TIMEOUT = 30  # seconds per example (bash and curl)
SCOPE = "upload:create project:read"
GRANTED = ["plan:read", "upload:create", "project:read"]
VARIABLES = {"APERTUR", "CLIENT_ID", "CLIENT_SECRET", "REDIRECT_URI", "CODE", "CODE_VERIFIER", "CODE_CHALLENGE"}
VARIABLES |= {"ACCESS_TOKEN", "REFRESH_TOKEN"}


def fenced(language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(DOC.read_text()) if lang == language]


def curl_examples() -> list[str]:
    return [block for block in fenced("sh") if "curl" in block]


def kind_of(block: str) -> str:
    """What an example does, read from its text (the order of the tests matters: a refresh example also
    names the token endpoint)."""
    if "/.well-known/oauth-authorization-server" in block:
        return "metadata"
    if "/oauth/revoke" in block:
        return "revoke"
    if "/oauth/introspect" in block:
        return "introspect"
    if "/api/v1/plan" in block:
        return "plan"
    if re.search(r"grant_type[\"']?\s*[:=]\s*[\"']?refresh_token", block):
        return "refresh"
    if re.search(r"grant_type[\"']?\s*[:=]\s*[\"']?authorization_code", block):
        return "exchange_pkce" if "CODE_VERIFIER" in block else "exchange"
    raise AssertionError(f"docs/oauth.md has a curl example this test does not know how to check:\n{block}")


def ensure_plans() -> None:
    """The plans come from a data migration; a transactional test's flush removes them, so re-seed."""
    for spec in PLANS:
        Plan.objects.update_or_create(name=spec["name"], defaults={k: v for k, v in spec.items() if k != "name"})


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@dataclass
class Live:
    """A live server, an app, a customer with one project, and a logged-in browser to mint codes with."""

    base: str
    client_id: str
    client_secret: str
    project_id: str
    browser: Client

    def code(self, *, challenge: str | None = None) -> str:
        params = {"scope": SCOPE}
        if challenge:
            params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
        return get_code(self.browser, self.client_id, **params)

    def tokens(self) -> dict[str, Any]:
        response = exchange(Client(), self.code(), self.client_id, self.client_secret)
        assert response.status_code == 200, response.content
        body: dict[str, Any] = response.json()
        return body

    def env(self, *, pkce: bool) -> dict[str, str]:
        """Fresh values for one example: an unused code (bound to a PKCE challenge when the example sends
        a verifier) and a live access/refresh token pair from another code."""
        tokens = self.tokens()
        env = {
            "APERTUR": self.base,
            "CLIENT_ID": self.client_id,
            "CLIENT_SECRET": self.client_secret,
            "REDIRECT_URI": REDIRECT_URI,
            "ACCESS_TOKEN": tokens["access_token"],
            "REFRESH_TOKEN": tokens["refresh_token"],
        }
        if pkce:
            verifier, challenge = pkce_pair()
            env |= {"CODE": self.code(challenge=challenge), "CODE_VERIFIER": verifier, "CODE_CHALLENGE": challenge}
        else:
            env["CODE"] = self.code()
        return env

    def introspect(self, token: str) -> dict[str, Any]:
        response = Client().post(
            "/oauth/introspect", {"token": token, "client_id": self.client_id, "client_secret": self.client_secret}
        )
        assert response.status_code == 200, response.content
        body: dict[str, Any] = response.json()
        return body

    def plan_status(self, access_token: str) -> int:
        return Client().get("/api/v1/plan", HTTP_AUTHORIZATION=f"Bearer {access_token}").status_code


@pytest.fixture
def live(live_server: Any, settings: Any) -> Live:
    settings.APERTUR_BASE_URL = live_server.url
    ensure_plans()
    created = make_app(name="Snapflow", redirect_uris=[REDIRECT_URI])
    customer = make_user("customer@example.com")
    project = create_project(owner=customer, name="Weddings")
    browser = Client()
    browser.force_login(customer)
    return Live(live_server.url, created.app.client_id, created.client_secret, project.public_id, browser)


def run(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The example as a user would paste it: bash with the variables exported. No proxy variables reach
    curl (a proxy from the environment must not intercept loopback), and an unset variable is an error."""
    return subprocess.run(
        ["/bin/bash", "-euo", "pipefail", "-c", script],
        env={"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), "CURL_HOME": "/nonexistent", **env},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


# --- what each kind of example must print ----------------------------------------------------------------


def check_metadata(body: dict[str, Any], env: dict[str, str], live: Live) -> None:
    base = env["APERTUR"]
    assert body["issuer"] == base
    assert body["authorization_endpoint"] == f"{base}/oauth/authorize"
    assert body["token_endpoint"] == f"{base}/oauth/token"
    assert body["revocation_endpoint"] == f"{base}/oauth/revoke"
    assert body["introspection_endpoint"] == f"{base}/oauth/introspect"
    assert body["code_challenge_methods_supported"] == ["S256"]
    assert set(body["token_endpoint_auth_methods_supported"]) == {"client_secret_basic", "client_secret_post"}


def check_token_response(body: dict[str, Any], live: Live) -> None:
    assert body["access_token"].startswith("oat_")
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["refresh_token"]
    assert body["scope"] == " ".join(GRANTED)
    assert body["scopes"] == GRANTED
    assert body["project_id"] == live.project_id
    assert body["plan"]["name"] == "Free"
    assert body["livemode"] is True
    assert live.plan_status(body["access_token"]) == 200


def check_exchange(body: dict[str, Any], env: dict[str, str], live: Live) -> None:
    check_token_response(body, live)
    # The code is spent: a replay is refused (and revokes what the example was issued).
    extra = {"code_verifier": env["CODE_VERIFIER"]} if "CODE_VERIFIER" in env else {}
    replay = exchange(Client(), env["CODE"], live.client_id, live.client_secret, **extra)
    assert replay.json()["error"] == "invalid_grant"
    assert live.plan_status(body["access_token"]) == 401


def check_refresh(body: dict[str, Any], env: dict[str, str], live: Live) -> None:
    check_token_response(body, live)
    assert body["refresh_token"] != env["REFRESH_TOKEN"]
    assert body["access_token"] != env["ACCESS_TOKEN"]
    assert live.introspect(env["REFRESH_TOKEN"]) == {"active": False}  # rotated
    assert live.introspect(body["refresh_token"])["active"] is True


def check_plan(body: dict[str, Any], env: dict[str, str], live: Live) -> None:
    assert body["name"] == "Free"
    assert body["livemode"] is True
    assert {"price_cents", "currency", "interval", "limits"} <= set(body)


def check_revoke(body: dict[str, Any], env: dict[str, str], live: Live) -> None:
    assert body == {}
    assert live.introspect(env["REFRESH_TOKEN"]) == {"active": False}
    # The access token issued with the refresh token goes too.
    assert live.introspect(env["ACCESS_TOKEN"]) == {"active": False}
    assert live.plan_status(env["ACCESS_TOKEN"]) == 401


def check_introspect(body: dict[str, Any], env: dict[str, str], live: Live) -> None:
    assert body["active"] is True
    assert body["client_id"] == live.client_id
    assert body["token_type"] == "Bearer"
    assert body["project_id"] == live.project_id
    assert body["scope"] == " ".join(GRANTED)
    assert body["livemode"] is True


CHECKS: dict[str, Callable[[dict[str, Any], dict[str, str], Live], None]] = {
    "metadata": check_metadata,
    "exchange": check_exchange,
    "exchange_pkce": check_exchange,
    "refresh": check_refresh,
    "plan": check_plan,
    "revoke": check_revoke,
    "introspect": check_introspect,
}


# --- the tests ---------------------------------------------------------------------------------------------


def test_the_guide_has_every_kind_of_example() -> None:
    examples = curl_examples()
    kinds = [kind_of(block) for block in examples]
    assert set(kinds) == set(CHECKS), kinds
    exchanges = [block for block in examples if kind_of(block) == "exchange"]
    # JSON body, form body with client_secret_post, Basic authentication.
    assert any("application/json" in block and "/api/v1/oauth/token" in block for block in exchanges)
    assert any("client_secret=" in block and "-u " not in block for block in exchanges)
    assert any('-u "$CLIENT_ID:$CLIENT_SECRET"' in block for block in exchanges)
    for block in examples:
        used = set(re.findall(r"\$\{?([A-Z_]+)", block))
        assert used <= VARIABLES, used - VARIABLES


@pytest.mark.parametrize(
    "block", curl_examples(), ids=[f"{i:02d}-{kind_of(b)}" for i, b in enumerate(curl_examples(), 1)]
)
def test_curl_example(live: Live, block: str) -> None:
    assert Path(CURL).exists()
    kind = kind_of(block)
    env = live.env(pkce=kind == "exchange_pkce")
    result = run(block, env)
    assert result.returncode == 0, f"exit {result.returncode}\n{block}\nstderr: {result.stderr}"
    try:
        body = json.loads(result.stdout)
    except ValueError:
        pytest.fail(f"not JSON:\n{result.stdout[:2000]}\nstderr: {result.stderr}")
    assert isinstance(body, dict)
    assert "error" not in body, body
    CHECKS[kind](body, env, live)


def test_pkce_snippet_computes_s256_and_the_server_accepts_it(live: Live) -> None:
    [snippet] = [b for b in fenced("sh") if "CODE_CHALLENGE=" in b and "curl" not in b]
    result = run(snippet + '\nprintf "%s %s" "$CODE_VERIFIER" "$CODE_CHALLENGE"\n', {})
    assert result.returncode == 0, result.stderr
    verifier, challenge = result.stdout.split(" ")
    assert re.fullmatch(r"[A-Za-z0-9\-._~]{43,128}", verifier), verifier  # RFC 7636 §4.1
    assert challenge == s256(verifier)

    code = live.code(challenge=challenge)
    response = exchange(Client(), code, live.client_id, live.client_secret, code_verifier=verifier)
    assert response.status_code == 200, response.content


def test_authorization_url_example_leads_to_consent_and_a_code(live: Live) -> None:
    [text] = [b for b in fenced("text") if "/oauth/authorize?" in b]
    verifier, challenge = pkce_pair()
    values = {"APERTUR": live.base, "CLIENT_ID": live.client_id, "CODE_CHALLENGE": challenge}
    url = string.Template("".join(line.strip() for line in text.splitlines())).substitute(values)
    assert url.startswith(live.base + "/oauth/authorize?")
    path = url.removeprefix(live.base)

    page = live.browser.get(path)
    assert page.status_code == 200, page.content.decode()[:2000]
    assert b'value="allow"' in page.content
    answer = live.browser.post(path, {"decision": "allow", "project": live.project_id})
    assert answer.status_code == 302, answer.content.decode()[:2000]
    location = answer["Location"]
    assert location.startswith(REDIRECT_URI + "?")
    query = parse_qs(urlsplit(location).query)
    sent = parse_qs(urlsplit(url).query)
    assert query["state"] == sent["state"]

    # The callback shown in the guide has the same shape.
    callbacks = [b for b in fenced("text") if b.startswith(REDIRECT_URI)]
    assert any("code=oac_" in b and f"state={sent['state'][0]}" in b for b in callbacks)
    assert query["code"][0].startswith("oac_")

    response = exchange(Client(), query["code"][0], live.client_id, live.client_secret, code_verifier=verifier)
    assert response.status_code == 200, response.content
    assert response.json()["scopes"] == GRANTED


def test_json_samples_have_the_fields_the_server_sends(live: Live) -> None:
    samples = [json.loads(block) for block in fenced("json")]
    tokens = live.tokens()
    introspection = live.introspect(tokens["access_token"])
    plan = Client().get("/api/v1/plan", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}").json()

    token_samples = [s for s in samples if "access_token" in s]
    assert token_samples and all(set(s) == set(tokens) for s in token_samples)
    assert all(set(s["plan"]) == set(tokens["plan"]) for s in token_samples)
    introspection_samples = [s for s in samples if "active" in s]
    assert introspection_samples and all(set(s) == set(introspection) for s in introspection_samples)
    plan_samples = [s for s in samples if "price_cents" in s and "access_token" not in s]
    assert plan_samples and all(set(s) == set(plan) for s in plan_samples)
    assert all(set(s["limits"]) == set(plan["limits"]) for s in plan_samples)
    for sample in samples:
        if isinstance(sample.get("error"), str):  # RFC 6749 §5.2
            assert set(sample) == {"error", "error_description"}
        elif "error" in sample:  # the API's envelope
            assert set(sample["error"]) == {"code", "message"}


def test_scope_table_lists_the_registry() -> None:
    from apertur.oauth import scopes

    text = DOC.read_text()
    rows = dict(re.findall(r"^\| `([a-z]+:[a-z]+)` \| (.+?) \|$", text, re.MULTILINE))
    assert list(rows) == list(scopes.SCOPES)
    for name, description in scopes.SCOPES.items():
        assert rows[name].startswith(description), name
    for alias, target in scopes.ALIASES.items():
        assert f"`{alias}` is accepted as an alias of `{target}`" in text


def test_python_example_compiles() -> None:
    for block in fenced("python"):
        compile(block, str(DOC), "exec")
