"""Hostile input, bounded: a committed, cheaper version of the hostile-input crawler an audit ran outside the suite.

Every HTML page below is fetched as the user who would see it (anonymous, customer, partner, staff); each of its
``<form>``s is found with the standard library's HTML parser and sent again once per field and hostile value, the
other fields keeping what the page filled in (or a plausible value). Every /api/v1 operation comes from the OpenAPI
document: each string field of its JSON body, and each path and query parameter, gets each hostile value. The OAuth
endpoints, the referral link ``/r/<code>`` and the guest upload page get the same.

Whatever is sent: never a 5xx. A refusal (a 4xx, or a form shown again with its error) says why (a form error, the
API's ``{"error": {"code", "message"}}``, OAuth's ``{"error"}``) and changes nothing: the row count of every table
is the same before and after, except the tables that record attempts on purpose (:data:`RECORDS_ATTEMPTS`). Each
request runs inside a savepoint rolled back afterwards, so that an accepted request (a 302 after a form that took a
``<script>`` as a project name is fine) does not change what the next one meets.

Deterministic (a fixed list of values, no randomness) and parametrized per page, form and operation, so that a
failure names the place and the value. CSRF has tests of its own: the client here does not enforce it.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import pytest
from django.apps import apps
from django.core.cache import cache
from django.db import connection, transaction
from django.test import Client

from apertur.api.v1 import api as api_v1
from apertur.core import ratelimit
from apertur.oauth.tests.conftest import Flow, flow  # noqa: F401 - the fixture is reused here
from apertur.projects.services import create_api_key
from apertur.referrals.services import ensure_default_link
from apertur.testing import PASSWORD, REDIRECT_URI, authorize_url, image_file, make_partner, make_staff, make_user
from apertur.uploads import destinations
from apertur.uploads import services as uploads
from apertur.webhooks import services as webhooks

pytestmark = pytest.mark.django_db

# --- the hostile values -------------------------------------------------------------------------------------------

# (name, value) for any string; each target adds the ones only its encoding can carry (invalid UTF-8 in a form body,
# a lone surrogate escaped in JSON, a number or an array where a string belongs).
HOSTILE: list[tuple[str, str]] = [
    ("nul", "a\x00b"),
    ("pct00", "a%00b"),
    ("rlo", "\u202egnp.exe"),
    ("100kB", "x" * 100_000),
    ("script", "<script>alert(1)</script>"),
    ("crlf", "a\r\nSet-Cookie: hostile=1"),
    ("traversal", "../../etc/passwd"),
    ("bignum", "99999999999999999999999"),
]
# Forms add "bad-utf8" (%ED%A0%80, a UTF-8-encoded surrogate, raw in the body) and "list" (the field sent twice).
JSON_ONLY: list[tuple[str, Any]] = [("surrogate", "\ud800"), ("number", 12345), ("array", []), ("object", {})]

# Tables that record an attempt whatever its outcome, so that a refusal may add a row to them. Only one is needed:
# core_auditevent, where a refused OAuth client authentication (/oauth/token, /introspect, /revoke) is recorded on
# purpose. Not excluded, because no refusal here reaches them: django_session (the clients' sessions are made
# before), referrals_referralclick (a visit to /r/<code> counts before anything is refused: it is a 302, not a
# refusal) and stripe_billing_rejecteddelivery (refused Stripe deliveries; the two payment
# webhooks are posted to in tests/test_hostile_webhooks.py, not here).
RECORDS_ATTEMPTS = {"core_auditevent"}

# A form shown again with its error: Apertur's form templates (_field.html, _form_errors.html, the pages' own
# "alert error" and the messages framework's error group).
FORM_ERROR_MARKERS = ('class="field-error"', 'class="alert error"', 'id="messages-error"', 'class="errorlist')


def fingerprint() -> tuple[tuple[str, int], ...]:
    """The row count of every table but :data:`RECORDS_ATTEMPTS`, in one query."""
    tables = sorted(
        {m._meta.db_table for m in apps.get_models() if m._meta.managed} - RECORDS_ATTEMPTS
    )  # fmt: skip
    counts = ", ".join(f"(SELECT COUNT(*) FROM {connection.ops.quote_name(t)})" for t in tables)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {counts}")
        return tuple(zip(tables, cursor.fetchone(), strict=True))


def changed(before: tuple[Any, ...], after: tuple[Any, ...]) -> dict[str, tuple[int, int]]:
    return {t: (b, a) for (t, b), (_, a) in zip(before, after, strict=True) if a != b}


@dataclass
class Probe:
    """Sends one request inside a savepoint that is rolled back afterwards, with the client's cookies and the
    cache (rate limits) as they were: each request meets the same state."""

    client: Client
    failures: list[str] = field(default_factory=list)
    baseline: tuple[Any, ...] = ()  # the fingerprint every request starts from (each is rolled back)

    def send(self, where: str, method: str, path: str, *, refused: Any, **kwargs: Any) -> Any:
        cookies = copy.deepcopy(self.client.cookies)
        cache.clear()
        ratelimit.clear_process_counters()
        before = self.baseline = self.baseline or fingerprint()
        savepoint = transaction.savepoint()
        try:
            response = getattr(self.client, method)(path, **kwargs)
            if response.status_code >= 500:
                self.failures.append(f"{where}: {method.upper()} {path[:120]} answered {response.status_code}")
            else:
                why = refused(response)
                if why is not None:
                    if why:
                        self.failures.append(f"{where}: refused without saying why: {why}")
                    diff = changed(before, fingerprint())
                    if diff:
                        self.failures.append(f"{where}: refused ({response.status_code}) yet changed {diff}")
            return response
        finally:
            transaction.savepoint_rollback(savepoint)
            self.client.cookies = cookies

    def check(self) -> None:
        assert not self.failures, "\n".join(self.failures[:30])


def refused_form(response: Any) -> str | None:
    """None when accepted; "" when refused with a message; the reason otherwise."""
    body = response.content.decode(errors="replace") if not response.streaming else ""
    if 400 <= response.status_code < 500:
        return "" if body.strip() else f"an empty {response.status_code}"
    if response.status_code == 200 and any(marker in body for marker in FORM_ERROR_MARKERS):
        return ""
    return None


def refused_api(response: Any) -> str | None:
    if response.status_code < 400:
        return None
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code} without an error object: {response.content[:200]!r}"
    if not (isinstance(error, dict) and error.get("code") and error.get("message")):
        return f"{response.status_code} error without code and message: {error!r}"[:300]
    return ""


def refused_oauth(response: Any) -> str | None:
    if response.status_code < 400:
        return None
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} is not RFC 6749 JSON: {response.content[:200]!r}"
    return "" if body.get("error") else f"{response.status_code} without error: {body!r}"[:300]


# --- forms --------------------------------------------------------------------------------------------------------


@dataclass
class Form:
    action: str
    method: str
    multipart: bool
    fields: dict[str, str] = field(default_factory=dict)  # name -> the value the page filled in
    kinds: dict[str, str] = field(default_factory=dict)  # name -> input type
    files: list[str] = field(default_factory=list)


class FormParser(HTMLParser):
    """Every <form> of a page: its fields and the values a browser would send."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.page = page
        self.forms: list[Form] = []
        self.links: set[str] = set()
        self._form: Form | None = None
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "a" and "?" in a.get("href", ""):
            self.links.add(a["href"])
        if tag == "form":
            self._form = Form(
                action=a.get("action") or self.page,
                method=(a.get("method") or "get").lower(),
                multipart="multipart" in a.get("enctype", ""),
            )
            self.forms.append(self._form)
        form, name = self._form, a.get("name")
        if form is None or not name:
            return
        if tag == "input":
            kind = a.get("type", "text").lower()
            if kind == "file":
                form.files.append(name)
            elif kind not in {"checkbox", "radio"} or "checked" in a:
                form.fields.setdefault(name, a.get("value", ""))
                form.kinds.setdefault(name, kind)
            elif kind == "radio":
                form.kinds.setdefault(name, kind)
        elif tag == "button" and a.get("type", "submit") == "submit":
            form.fields.setdefault(name, a.get("value", ""))
            form.kinds.setdefault(name, "button")
        elif tag == "select":
            self._select = name
            form.kinds[name] = "select"
        elif tag == "option" and self._select:
            if self._select not in form.fields or "selected" in a:
                form.fields[self._select] = a.get("value", "")
        elif tag == "textarea":
            self._textarea = name
            form.fields[name] = ""
            form.kinds[name] = "textarea"

    def handle_data(self, data: str) -> None:
        if self._form is not None and self._textarea:
            self._form.fields[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None


PLAUSIBLE = {"email": "probe@example.com", "url": "https://hooks.example.com/in", "number": "1", "password": PASSWORD}


def plausible(name: str, kind: str, value: str) -> str:
    """What a person would type where the page left a field empty, so that the hostile value is not refused only
    because another field is missing."""
    if value:
        return value
    if "url" in name or "website" in name or "redirect" in name:
        return PLAUSIBLE["url"]
    if "email" in name:
        return PLAUSIBLE["email"]
    return PLAUSIBLE.get(kind, "probe")


def post_form(probe: Probe, where: str, form: Form) -> None:
    base = {name: plausible(name, form.kinds.get(name, "text"), value) for name, value in form.fields.items()}
    targets = [name for name in base if name != "csrfmiddlewaretoken"]
    path = form.action
    for name in targets:
        label = f"{where} form {path} field {name}"
        values: list[tuple[str, Any]] = [*HOSTILE, ("list", [HOSTILE[0][1], HOSTILE[4][1]])]
        for value_name, value in values:
            data = {**base, name: value}
            if form.multipart:
                data.update({f: image_file() for f in form.files})
            if form.method == "get":
                probe.send(f"{label}={value_name}", "get", path, refused=refused_form, data=data)
            else:
                probe.send(f"{label}={value_name}", "post", path, refused=refused_form, data=data)
        if form.method == "post" and not form.multipart:
            # Not UTF-8: a surrogate encoded as UTF-8, which Django's form decoding cannot turn into text.
            rest = urlencode({k: v for k, v in base.items() if k != name})
            body = f"{rest}&{quote(name)}=%ED%A0%80%FF"
            probe.send(
                f"{label}=bad-utf8",
                "post",
                path,
                refused=refused_form,
                data=body,
                content_type="application/x-www-form-urlencoded",
            )


# --- the world every test starts from -----------------------------------------------------------------------------


@dataclass
class World:
    flow: Flow
    ids: dict[str, str]
    clients: dict[str, Client]


@pytest.fixture
def world(flow: Flow) -> World:  # noqa: F811
    customer_project = flow.project
    session = uploads.create_session(project=customer_project, title="Wedding")
    endpoint = webhooks.create_endpoint(project=customer_project, url="https://hooks.example.com/in")
    destination = destinations.create_https_destination(
        project=customer_project, name="Archive", url="https://archive.example.com/in"
    )
    key = create_api_key(project=customer_project, name="Server")
    partner = flow.created.app.partner
    link = ensure_default_link(partner=partner)
    applicant = make_partner(approved=False)
    staff = make_staff()
    clients = {"anonymous": Client(), "customer": flow.browser}
    clients["partner"] = Client()
    clients["partner"].force_login(partner.user)
    clients["staff"] = Client()
    clients["staff"].force_login(staff)
    clients["applicant"] = Client()
    clients["applicant"].force_login(make_user())  # a customer who is not a partner yet: the partner application
    ids = {
        "project": customer_project.public_id,
        "session": session.public_id,
        "upload_token": session.token,
        "endpoint": endpoint.public_id,
        "destination": destination.public_id,
        "key": str(key.key.pk),
        "client_id": flow.client_id,
        "partner": str(applicant.pk),
        "referral": link.code,
    }
    return World(flow=flow, ids=ids, clients=clients)


# (who, path): every page a person fills a form on, and the pages that take query parameters.
PAGES = [
    ("anonymous", "/"),
    ("anonymous", "/login"),
    ("anonymous", "/signup"),
    ("anonymous", "/password-reset"),
    ("anonymous", "/confirm-email/resend"),
    ("anonymous", "/u/{upload_token}"),
    ("customer", "/account"),
    ("customer", "/projects/"),
    ("customer", "/projects/{project}/"),
    ("customer", "/projects/{project}/settings"),
    ("customer", "/projects/{project}/billing"),
    ("customer", "/projects/{project}/api-keys/"),
    ("customer", "/projects/{project}/connections/"),
    ("customer", "/projects/{project}/sessions/{session}/"),
    ("customer", "/projects/{project}/webhooks/"),
    ("customer", "/projects/{project}/webhooks/new"),
    ("customer", "/projects/{project}/webhooks/{endpoint}/"),
    ("customer", "/projects/{project}/destinations/"),
    ("customer", "/projects/{project}/destinations/new"),
    ("customer", "/projects/{project}/destinations/{destination}/"),
    ("customer", "/oauth/authorize?consent"),
    ("applicant", "/partners/"),
    ("partner", "/partners/"),
    ("partner", "/partners/apps/"),
    ("partner", "/partners/apps/new"),
    ("partner", "/partners/apps/{client_id}/"),
    ("partner", "/partners/apps/{client_id}/edit"),
    ("partner", "/partners/referrals/"),
    ("partner", "/partners/commissions/"),
    ("partner", "/partners/payouts/"),
    ("staff", "/partners/staff/"),
    ("staff", "/partners/staff/{partner}/"),
]
QUERY_NAMES = ["page", "next", "status", "q"]


def page_path(world: World, template: str) -> str:
    if template == "/oauth/authorize?consent":
        return authorize_url(world.flow.client_id, scope="project:read upload:create")
    return template.format(**world.ids)


@pytest.mark.parametrize(("who", "template"), PAGES, ids=[f"{who}:{path}" for who, path in PAGES])
def test_page_and_its_forms(world: World, who: str, template: str) -> None:
    client = world.clients[who]
    probe = Probe(client)
    path = page_path(world, template)
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    parser = FormParser(urlsplit(path).path)
    parser.feed(response.content.decode())
    assert template in {"/", "/projects/{project}/billing", "/partners/commissions/"} or parser.forms, (
        f"{path} has no form: the page list is out of date"
    )
    # Query parameters: the page's own links' and the usual ones, all set to each value at once.
    names = set(QUERY_NAMES)
    for href in parser.links:
        names.update(part.split("=", 1)[0] for part in urlsplit(href).query.split("&") if part)
    separator = "&" if "?" in path else "?"
    for value_name, value in HOSTILE:
        query = urlencode(dict.fromkeys(sorted(names), value))
        probe.send(f"GET {template} ?*={value_name}", "get", f"{path}{separator}{query}", refused=refused_form)
    # Each form once: a list shows the same form for each of its rows.
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for form in parser.forms:
        shape = (form.action.split("?")[0].rstrip("/").rsplit("/", 1)[-1], tuple(sorted(form.fields)))
        if shape in seen or form.action.startswith(("http://", "https://")):
            continue
        seen.add(shape)
        post_form(probe, f"{who}:{template}", form)
    probe.check()


# Path parameters of the HTML pages: an id that is not one (each value quoted into the path).
PATH_PAGES = [
    ("customer", "/projects/{}/"),
    ("customer", "/projects/{project}/webhooks/{}/"),
    ("customer", "/projects/{project}/destinations/{}/"),
    ("customer", "/projects/{project}/sessions/{}/"),
    ("customer", "/uploads/{}/download"),
    ("partner", "/partners/apps/{}/"),
    ("partner", "/partners/payouts/confirm/{}"),
    ("anonymous", "/u/{}"),
    ("anonymous", "/r/{}"),
    ("anonymous", "/confirm-email/{}/{}"),
    ("anonymous", "/password-reset/{}/{}"),
]


@pytest.mark.parametrize(("who", "template"), PATH_PAGES, ids=[f"{who}:{path}" for who, path in PATH_PAGES])
def test_path_parameters(world: World, who: str, template: str) -> None:
    probe = Probe(world.clients[who])
    for value_name, value in [*HOSTILE, ("bad-utf8", "%ED%A0%80")]:
        quoted = value if value_name == "bad-utf8" else quote(value, safe="")
        path = template.replace("{}", quoted).format(**world.ids)
        probe.send(f"{template} <- {value_name}", "get", path, refused=refused_form)
    probe.check()


def test_referral_link_with_hostile_query_and_agent(world: World) -> None:
    probe = Probe(world.clients["anonymous"])
    path = f"/r/{world.ids['referral']}"
    for value_name, value in HOSTILE:
        probe.send(
            f"/r/<code>?*={value_name}",
            "get",
            f"{path}?{urlencode({'utm_source': value, 'next': value})}",
            refused=refused_form,
            HTTP_USER_AGENT=value[:8000].replace("\r\n", " "),
        )
    probe.check()


# --- the API, from its OpenAPI document ---------------------------------------------------------------------------

SCHEMA = api_v1.get_openapi_schema(path_prefix="/api/v1")
OPERATIONS = [
    (method, path)
    for path, item in sorted(SCHEMA["paths"].items())
    for method in sorted(item)
    if method in {"get", "post", "put", "patch", "delete"} and not path.endswith("/oauth/token")
]


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return resolve(SCHEMA["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]])
    for union in ("anyOf", "oneOf", "allOf"):
        if union in schema:
            chosen = [s for s in schema[union] if resolve(s).get("type") != "null"]
            return resolve(chosen[0]) if chosen else {}
    return schema


def example(name: str, schema: dict[str, Any]) -> Any:
    """A plausible value of ``schema``: the field under test gets the hostile one."""
    schema = resolve(schema)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object":
        return {}
    return "https://hooks.example.com/in" if "url" in name else "probe"


def test_the_operations_are_the_served_document(client: Client) -> None:
    served = client.get("/api/v1/openapi.json").json()
    assert {(m, p) for p, item in served["paths"].items() for m in item if m != "parameters"} >= set(OPERATIONS)
    assert len(OPERATIONS) >= 15


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m.upper()} {p}" for m, p in OPERATIONS])
def test_api_operation(world: World, method: str, path: str) -> None:
    operation = SCHEMA["paths"][path][method]
    token = world.flow.tokens(
        scope="upload:create upload:read project:read keys:read project:settings webhooks:manage billing:read "
        "destinations:read"
    )["access_token"]
    probe = Probe(Client())
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    real = {"session_id": world.ids["session"], "endpoint_id": world.ids["endpoint"]}
    params = [p for p in operation.get("parameters", []) if p["in"] in {"path", "query"}]
    body_schema = (
        operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    )  # fmt: skip
    properties = resolve(body_schema).get("properties", {}) if body_schema else {}
    required = set(resolve(body_schema).get("required", [])) if body_schema else set()
    base_body = {name: example(name, s) for name, s in properties.items() if name in required}

    def url(path_values: dict[str, str], query: dict[str, str]) -> str:
        filled = path
        for name, value in {**real, **path_values}.items():
            filled = filled.replace("{" + name + "}", value)
        return filled + (f"?{urlencode(query)}" if query else "")

    def call(where: str, target: str, body: Any = None, raw: str | None = None) -> None:
        kwargs: dict[str, Any] = dict(auth)
        if raw is not None:
            kwargs.update(data=raw, content_type="application/json")
        elif body is not None:
            kwargs.update(data=body, content_type="application/json")
        probe.send(f"{method.upper()} {path} {where}", method, target, refused=refused_api, **kwargs)

    body = base_body if body_schema else None
    for param in params:
        for value_name, value in [*HOSTILE, ("bad-utf8", None)]:
            if param["in"] == "path":
                quoted = "%ED%A0%80" if value is None else quote(value, safe="")
                call(f"path {param['name']}={value_name}", url({param["name"]: quoted}, {}), body)
            else:
                # bad-utf8: a UTF-8-encoded surrogate, not UTF-8, in the query string
                target = (
                    url({}, {param["name"]: value}) if value is not None else f"{url({}, {})}?{param['name']}=%ED%A0%80"
                )
                call(f"query {param['name']}={value_name}", target, body)
    for name, schema in properties.items():
        values: list[tuple[str, Any]] = [*HOSTILE, *JSON_ONLY]
        if resolve(schema).get("type") in {"integer", "number"}:
            values += [("string-for-number", "abc"), ("huge-number", 10**30)]
        for value_name, value in values:
            if value_name == "surrogate":
                # json.dumps escapes it as \ud800: the lone surrogate as a client sends it.
                call(f"body {name}={value_name}", url({}, {}), raw=json.dumps({**base_body, name: value}))
            else:
                call(f"body {name}={value_name}", url({}, {}), {**base_body, name: value})
    if body_schema:
        call("body not JSON", url({}, {}), raw='{"a": "\\ud800')
        call("body an array", url({}, {}), raw="[]")
        call("body invalid UTF-8", url({}, {}), raw=b'{"title": "\xed\xa0\x80"}'.decode("latin-1"))
    probe.check()


# --- OAuth --------------------------------------------------------------------------------------------------------

AUTHORIZE_PARAMS = ["response_type", "client_id", "redirect_uri", "state", "scope", "code_challenge",
                    "code_challenge_method", "project", "prompt", "public_key"]  # fmt: skip


def test_oauth_authorize_query(world: World) -> None:
    client = world.clients["customer"]
    probe = Probe(client)

    def refused(response: Any) -> str | None:
        if response.status_code == 302:
            return None  # an error goes back to the app as ?error=, or the consent's answer
        return refused_form(response)

    for name in AUTHORIZE_PARAMS:
        for value_name, value in HOSTILE:
            query = {"response_type": "code", "client_id": world.flow.client_id, "redirect_uri": REDIRECT_URI,
                     "state": "st4te", "scope": "project:read", name: value}  # fmt: skip
            path = f"/oauth/authorize?{urlencode(query)}"
            probe.send(f"GET authorize {name}={value_name}", "get", path, refused=refused)
            probe.send(
                f"POST authorize {name}={value_name}",
                "post",
                path,
                refused=refused,
                data={"decision": "allow", "project": world.ids["project"]},
            )
        probe.send(f"GET authorize {name}=bad-utf8", "get", f"{authorize_url(world.flow.client_id)}&{name}=%ED%A0%80",
                   refused=refused)  # fmt: skip
    probe.check()


@pytest.mark.parametrize("endpoint", ["/oauth/token", "/oauth/introspect", "/oauth/revoke", "/api/v1/oauth/token"])
def test_oauth_form_endpoints(world: World, endpoint: str) -> None:
    app = world.flow
    probe = Probe(Client())
    token = app.tokens()["access_token"]
    if endpoint.endswith("token"):
        base = {"grant_type": "authorization_code", "code": app.code(), "redirect_uri": REDIRECT_URI,
                "code_verifier": "v" * 43, "refresh_token": "r", "scope": "plan:read"}  # fmt: skip
    else:
        base = {"token": token, "token_type_hint": "access_token"}
    base.update(client_id=app.client_id, client_secret=app.secret)
    as_json = endpoint.startswith("/api/")
    for name in base:
        values: list[tuple[str, Any]] = [*HOSTILE, *(JSON_ONLY if as_json else [("list", ["a", "b"])])]
        for value_name, value in values:
            data = {**base, name: value}
            if as_json and value_name == "surrogate":
                probe.send(f"{endpoint} {name}={value_name}", "post", endpoint, refused=refused_oauth,
                           data=json.dumps(data), content_type="application/json")  # fmt: skip
            elif as_json:
                probe.send(f"{endpoint} {name}={value_name}", "post", endpoint, refused=refused_oauth, data=data,
                           content_type="application/json")  # fmt: skip
            else:
                probe.send(f"{endpoint} {name}={value_name}", "post", endpoint, refused=refused_oauth, data=data)
        if not as_json:
            rest = urlencode({k: v for k, v in base.items() if k != name})
            probe.send(f"{endpoint} {name}=bad-utf8", "post", endpoint, refused=refused_oauth,
                       data=f"{rest}&{name}=%ED%A0%80", content_type="application/x-www-form-urlencoded")  # fmt: skip
    probe.check()
