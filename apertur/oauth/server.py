"""Apertur's OAuth 2.0 authorization server, built on Authlib (the protocol) with our own models (the
persistence), the split Polar's server uses.

- RFC 6749 authorization code grant (§4.1) and refresh token grant (§6), client authentication by
  ``client_secret_basic`` or ``client_secret_post`` (§2.3.1).
- RFC 7636 PKCE, ``S256`` only.
- RFC 7009 revocation and RFC 7662 introspection as Authlib endpoints.

Where the seeds differ from the RFCs, this module adapts: token requests may be JSON as well as form
encoded, and the token response carries ``scopes``, ``project_id``, ``plan`` and ``livemode``.
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from collections.abc import Iterator, Mapping
from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl, unquote

from authlib.oauth2 import rfc6749, rfc7009, rfc7636, rfc7662
from authlib.oauth2.base import invalid_error_characters
from authlib.oauth2.rfc6749 import (
    ClientAuthentication,
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    OAuth2Payload,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from django.conf import settings
from django.core.exceptions import BadRequest, RequestDataTooBig, TooManyFieldsSent
from django.db import DEFAULT_DB_ALIAS
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.http.request import HttpHeaders

from apertur.core import audit, clock, tokens
from apertur.core.validation import loads_json
from apertur.oauth import scopes as scope_registry
from apertur.oauth import services as oauth_services
from apertur.oauth import token_cache
from apertur.oauth import tokens as token_store
from apertur.oauth.compiled import CompiledLookup
from apertur.oauth.models import CREDENTIAL_FIELDS, AuthorizationCode, Connection, OAuthApp, SecretMatch, Token
from apertur.oauth.selectors import lookable
from apertur.oauth.tokens import PLAN_COLUMNS
from apertur.partners.models import PartnerStatus

CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
#: The protection space named in every challenge: the token endpoints' Basic one (RFC 7617 §2 requires it) and
#: the API's Bearer one (RFC 6750 §3 allows it).
REALM = "apertur"

# The endpoints' reads, compiled once (apertur.oauth.compiled): a usable client with its partner (the
# authorization endpoint shows them); a code, locked (only its own row), with its customer's state and its
# app's credentials; a live connection with its project and plan.
_usable_client = CompiledLookup(lambda v: OAuthApp.objects.usable().select_related("partner").filter(client_id=v))
# The token, revocation and introspection endpoints read only a client's id, client_id and secret hash (the
# partner's approval is the query's condition): no partner instance, no timestamps to convert.
_authenticating_client = CompiledLookup(
    lambda v: OAuthApp.objects.usable().only("client_id", *CREDENTIAL_FIELDS).filter(client_id=v)
)
# The code's connection comes with it, with the project and plan the token response reports: the lock is on
# the code only (``of=self``), so exchanges of other codes of the same connection or plan do not wait.
_code_locked = CompiledLookup(
    lambda v: (
        AuthorizationCode.objects.select_for_update(of=("self",))
        .select_related("user", "connection__project__plan")
        .only(
            "app_id",
            "user_id",
            "project_id",
            "connection_id",
            "scopes",
            "redirect_uri",
            "code_challenge",
            "code_challenge_method",
            "livemode",
            "created_at",
            "expires_at",
            "used_at",
            "user__is_active",
            "connection__app_id",
            "connection__project_id",
            "connection__user_id",
            "connection__revoked_at",
            "connection__project__owner_id",
            "connection__project__public_id",
            *(f"connection__{column}" for column in PLAN_COLUMNS),
        )
        .annotate(**token_store.APP_CREDENTIALS)
        .filter(code_hash=v)
    )
)


# RFC 6749 §5.2 makes ``error_description`` optional; Apertur always sends one, so a developer reading a failed
# request learns what to change. Authlib raises several errors without (``InvalidGrantError()``, its revocation
# endpoint's ``InvalidRequestError()``): these stand in for them. Only the characters §5.2 allows (no quotes).
GENERIC_DESCRIPTIONS = {
    "invalid_request": "The request is missing a required parameter, repeats one, or is otherwise malformed.",
    "invalid_client": (
        "Client authentication failed: check client_id and client_secret"
        " (HTTP Basic, or client_id and client_secret in the body)."
    ),
    "invalid_grant": (
        "The authorization code or refresh token is invalid, expired or revoked, or was issued to another client."
    ),
    "unauthorized_client": "This client may not use this grant type.",
    "unsupported_grant_type": "grant_type must be authorization_code or refresh_token.",
    "invalid_scope": "The requested scope is unknown, malformed, or more than was granted.",
    "access_denied": "The user or Apertur denied the request.",
    "unsupported_response_type": "response_type must be code.",
}


class UnsupportedResponseType(OAuth2Error):
    """RFC 6749 §4.1.2.1 ``unsupported_response_type`` with the description it is given (Authlib's class
    builds its own from the value)."""

    error = "unsupported_response_type"


def describe(error: OAuth2Error) -> str:
    """The error's own description, else the generic one for its code: never empty, and only the characters RFC
    6749 §5.2 allows (Authlib's ``unsupported_grant_type`` echoed the value it was sent, quotes and all)."""
    description = error.get_error_description()
    if description and not invalid_error_characters(description):
        return str(description)
    return GENERIC_DESCRIPTIONS.get(error.error or "", "The request failed.")


# --- Authlib's views of our models ---------------------------------------------------------------------


class Client(rfc6749.ClientMixin):
    """An :class:`OAuthApp` as Authlib sees a client."""

    def __init__(self, app: OAuthApp) -> None:
        self.app = app

    @cached_property
    def redirect_uris(self) -> list[str]:
        # Only the authorization endpoint needs them: the token endpoint does not pay for the query.
        return [r.uri for r in self.app.redirect_uris.all()]

    def get_client_id(self) -> str:
        return self.app.client_id

    def get_default_redirect_uri(self) -> str | None:
        """RFC 6749 §3.1.2.3: without a redirect_uri, the only registered one is used; with several
        registered, the request must name one."""
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        return scope_registry.to_string(scope_registry.normalize(scope))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """Exact string comparison (RFC 6749 §3.1.2.3; RFC 9700 §4.1.3: no pattern matching)."""
        return redirect_uri in self.redirect_uris

    #: Whether the last secret checked was the one a roll replaced (``authenticate_client`` records its use).
    used_previous_secret = False

    def check_client_secret(self, client_secret: str) -> bool:
        match = self.app.matching_client_secret(client_secret)
        self.used_previous_secret = match is SecretMatch.PREVIOUS
        return match is not None

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in CLIENT_AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in {"authorization_code", "refresh_token"}


class Code(rfc6749.AuthorizationCodeMixin):
    def __init__(self, row: AuthorizationCode, connection: Connection) -> None:
        self.row = row
        self.connection = connection

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scopes


class IssuedToken(rfc6749.TokenMixin):
    def __init__(self, row: Token, kind: str) -> None:
        self.row = row
        self.kind = kind  # "access_token" or "refresh_token": the one that was presented

    def check_client(self, client: Client) -> bool:
        return self.row.app_id == client.app.pk

    def get_scope(self) -> str:
        return " ".join(self.row.refresh_scope_list) if self.kind == "refresh_token" else self.row.scopes

    def get_expires_in(self) -> int:
        return int(token_store.ACCESS_TTL.total_seconds())

    def is_expired(self) -> bool:
        if self.kind == "refresh_token":
            return not token_store.refresh_is_live(self.row) and self.row.refresh_revoked_at is None
        return self.row.access_expires_at <= clock.now()

    def is_revoked(self) -> bool:
        if self.kind == "refresh_token":
            return self.row.refresh_revoked_at is not None
        return self.row.access_revoked_at is not None


# --- requests ----------------------------------------------------------------------------------------


class Payload(OAuth2Payload):
    def __init__(self, datalist: dict[str, list[str]]) -> None:
        self._datalist = defaultdict(list, datalist)
        self._data = {k: v[0] for k, v in datalist.items() if v}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class EnvironHeaders(Mapping[str, str]):
    """A request's headers looked up in the WSGI environ by name, which is all Authlib does with them at these
    endpoints (``headers.get("Authorization")``). Django's ``request.headers`` converts every header's name to
    build its mapping (~6 µs a request); a lookup here converts only the name asked for, with Django's own
    ``HttpHeaders.to_wsgi_name``. Iterating (never on the hot paths) is Django's mapping."""

    __slots__ = ("_meta",)

    def __init__(self, meta: dict[str, Any]) -> None:
        self._meta = meta

    def __getitem__(self, name: str) -> str:
        return str(self._meta[HttpHeaders.to_wsgi_name(name)])

    def __iter__(self) -> Iterator[str]:
        return iter(HttpHeaders(self._meta))

    def __len__(self) -> int:
        return len(HttpHeaders(self._meta))

    def __bool__(self) -> bool:
        return True  # Authlib's ``headers or {}`` must not build Django's mapping to learn this


class Request(OAuth2Request):
    """An OAuth request whose parameters come from one place only: the query string at the authorization
    endpoint (RFC 6749 §4.1.1), the body at the token endpoints (§4.1.3, §6)."""

    def __init__(self, django_request: HttpRequest, datalist: dict[str, list[str]]) -> None:
        super().__init__(
            method=django_request.method or "GET",
            uri=settings.APERTUR_BASE_URL + django_request.get_full_path(),
            headers=EnvironHeaders(django_request.META),
        )
        self.payload = Payload(datalist)
        self.django_request = django_request
        self.connection: Connection | None = None  # authorization endpoint: the connection the consent made
        self.livemode = True
        # The row of the code or token this request presents, read before client authentication (with its
        # app's credentials: tokens.APP_CREDENTIALS), or None: see AuthorizationServer.authenticate_client.
        self.presented_row: Any = None
        self.presented: IssuedToken | None = None  # revocation and introspection: the token presented, if found

    @property
    def args(self) -> dict[str, str]:
        return self.payload.data

    @property
    def form(self) -> dict[str, str]:
        return self.payload.data


def body_params(request: HttpRequest) -> dict[str, list[str]]:
    """Token endpoint parameters from a form-encoded (RFC 6749) or JSON (the seeds) body. Raises
    :class:`InvalidRequestError` for a body that is neither, or that repeats a parameter (RFC 6749 §3.2:
    parameters "MUST NOT be included more than once"; which copy counts would be ambiguous), that is not UTF-8
    (RFC 6749 Appendix B), that has more fields than ``DATA_UPLOAD_MAX_NUMBER_FIELDS``, is larger than
    ``DATA_UPLOAD_MAX_MEMORY_SIZE`` or is multipart Django cannot parse: an OAuth error in JSON, not Django's HTML
    400 page (which, with DEBUG on, reads the body again and fails with a 500). A parameter sent empty is left
    out, as if omitted (§3.2)."""
    try:
        params = _body_params(request)
    except BadRequest as exc:  # a charset other than UTF-8
        raise InvalidRequestError(str(exc)) from exc
    except TooManyFieldsSent as exc:
        raise InvalidRequestError("Too many parameters.") from exc
    except RequestDataTooBig as exc:
        raise InvalidRequestError("The request body is too large.") from exc
    except MultiPartParserError as exc:
        raise InvalidRequestError("The multipart body could not be parsed: send a form-encoded body.") from exc
    for key, values in params.items():
        if len(values) > 1:
            raise _repeated(key)
    # RFC 6749 §3.1 and §3.2: "Parameters sent without a value MUST be treated as if they were omitted from the
    # request." Dropped after the repeat check, so ``code=&code=x`` stays a repeated parameter. An empty ``token``
    # was looked up as an unknown one (revocation 200, introspection inactive) and an empty ``code`` or
    # ``refresh_token`` answered invalid_grant: each is a missing required parameter (invalid_request).
    return {key: values for key, values in params.items() if values != [""]}


def _repeated(key: str) -> InvalidRequestError:
    """The error for a repeated parameter, naming it when its name fits in an ``error_description`` (RFC 6749
    §5.2: printable ASCII but ``"`` and ``\\``; building the error with another character failed: a 500)."""
    if key and len(key) <= 100 and not invalid_error_characters(key):
        return InvalidRequestError(f"Repeated parameter '{key}'.")
    return InvalidRequestError("Repeated parameter.")


class _JSONObject(dict[str, Any]):
    """A JSON object that remembers the first member name it saw twice (``json.loads`` keeps the last copy)."""

    repeated: str | None = None


def _json_object(pairs: list[tuple[str, Any]]) -> _JSONObject:
    obj = _JSONObject()
    for key, value in pairs:
        if key in obj and obj.repeated is None:
            obj.repeated = key
        obj[key] = value
    return obj


def _body_params(request: HttpRequest) -> dict[str, list[str]]:
    content_type = request.content_type or ""
    if content_type == "application/json":
        try:
            data = loads_json(request.body or b"{}", object_pairs_hook=_json_object)
        except ValueError as exc:  # syntax, not UTF-8, nested deeper than the parser recurses
            raise InvalidRequestError("The JSON body could not be parsed.") from exc
        if not isinstance(data, dict):
            raise InvalidRequestError("The JSON body must be an object.")
        if isinstance(data, _JSONObject) and data.repeated is not None:
            # A member twice is a parameter twice (RFC 6749 §3.2): which copy counts would be ambiguous.
            raise _repeated(data.repeated)
        out: dict[str, list[str]] = {}
        for key, value in data.items():
            if isinstance(value, list):
                out[str(key)] = [str(v) for v in value]
            elif value is not None:
                out[str(key)] = [value if isinstance(value, str) else json.dumps(value)]
        return out
    if content_type == "application/x-www-form-urlencoded":
        return form_params(request)
    return {k: request.POST.getlist(k) for k in request.POST}


def form_params(request: HttpRequest) -> dict[str, list[str]]:
    """An ``application/x-www-form-urlencoded`` body (RFC 6749 Appendix B) as Django's ``request.POST`` would
    hold it — the same body size limit (``request.body``), the same refusal of a charset other than UTF-8
    (``BadRequest``), decoding (Latin-1 when the bytes are not UTF-8), parser and field-count limit
    (``TooManyFieldsSent``) as ``HttpRequest._load_post_and_files`` and ``QueryDict`` — without building the
    QueryDict only to copy it out (~7 µs of each token request). ``tests/test_server.py`` compares the two on
    awkward bodies."""
    if request.encoding is not None and request.encoding.lower() != "utf-8":
        raise BadRequest(
            "HTTP requests with the 'application/x-www-form-urlencoded' content type must be UTF-8 encoded."
        )
    body = request.body
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("iso-8859-1")
    try:
        pairs = parse_qsl(
            text, keep_blank_values=True, encoding="utf-8", max_num_fields=settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        )
    except ValueError as exc:  # as QueryDict: only max_num_fields raises here
        raise TooManyFieldsSent(
            "The number of GET/POST parameters exceeded settings.DATA_UPLOAD_MAX_NUMBER_FIELDS."
        ) from exc
    params: dict[str, list[str]] = {}
    for key, value in pairs:
        params.setdefault(key, []).append(value)
    return params


# --- grants ------------------------------------------------------------------------------------------


class S256CodeChallenge(rfc7636.CodeChallenge):
    """PKCE with ``S256`` only: ``plain`` (and a challenge without a method, which RFC 7636 §4.3 would
    read as ``plain``) is refused, so a downgrade cannot happen."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256; plain is not supported.")
        super().validate_code_challenge(grant, redirect_uri)

    def get_authorization_code_challenge(self, authorization_code: Code) -> str:
        return authorization_code.row.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code: Code) -> str:
        return authorization_code.row.code_challenge_method or "S256"


class CodeGrant(AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS

    @staticmethod
    def validate_authorization_redirect_uri(request: Any, client: Client) -> str:
        """Authlib's check (exact match, RFC 6749 §3.1.2.3), with a description that does not repeat the URI:
        Authlib's did, and an unregistered URI holding a character §4.1.2.1 keeps out of ``error_description``
        (``"``, ``\\``, anything not printable ASCII) made building the error fail: a 500 instead of the error page."""
        redirect_uri = request.payload.redirect_uri
        if redirect_uri and not client.check_redirect_uri(redirect_uri):
            raise InvalidRequestError(
                "redirect_uri is not one of the app's registered redirect URIs (they must match exactly)."
            )
        validated: str = AuthorizationCodeGrant.validate_authorization_redirect_uri(request, client)
        return validated

    def validate_token_request(self) -> None:
        """Authlib's, which compares the token request's ``redirect_uri`` only with one the authorization request
        named. RFC 6749 §4.1 (E) (erratum 4206) and §4.1.3: the redirect URI received must match the one the code
        was sent to. Without one in the authorization request the code went to the app's only registered URI
        (§3.1.2.3), so a ``redirect_uri`` sent anyway must be a registered one: any other value was accepted."""
        super().validate_token_request()
        redirect_uri = self.request.payload.redirect_uri
        if (
            redirect_uri
            and not self.request.authorization_code.get_redirect_uri()
            and not self.request.client.check_redirect_uri(redirect_uri)
        ):
            raise InvalidGrantError("redirect_uri differs from the redirect URI the authorization code was sent to.")

    def generate_authorization_code(self) -> str:
        return token_store.new_code()

    def save_authorization_code(self, code: str, request: Request) -> None:
        data = request.payload.data
        assert request.connection is not None, "the consent (token_store.connect) comes before the code"
        token_store.save_code(
            code=code,
            connection=request.connection,
            user=request.user,
            scopes=scope_registry.split(request.scope),
            redirect_uri=data.get("redirect_uri", ""),
            code_challenge=data.get("code_challenge", ""),
            code_challenge_method=data.get("code_challenge_method", "") if data.get("code_challenge") else "",
            livemode=request.livemode,
        )

    def authenticate_token_endpoint_client(self) -> Client:
        # The code is read first, with its app's credentials: the client that owns it authenticates without a
        # query of its own. Nothing is decided on it before the client has authenticated. The row lock makes
        # two simultaneous exchanges of one code take turns: the second sees it used.
        code = self.request.payload.data.get("code")
        self.request.presented_row = _code_locked.first(tokens.hash_secret(code)) if code else None
        client: Client = super().authenticate_token_endpoint_client()
        return client

    def query_authorization_code(self, code: str, client: Client) -> Code | None:
        row = self.request.presented_row  # the row of this request's ``code`` (authenticate_token_endpoint_client)
        if row is None or row.app_id != client.app.pk:
            return None
        if row.used_at is not None:
            revoked = token_store.revoke_from_code(code=row)
            audit.record(
                action="oauth.code_replayed",
                obj=client.app,
                data={"code_id": row.pk, "tokens_revoked": revoked},
                ip=_ip(self.request),
            )
            raise InvalidGrantError("The authorization code was already used. Tokens issued from it have been revoked.")
        if row.expires_at <= clock.now():
            if row.expires_at < row.created_at + token_store.CODE_TTL:  # ended early: tokens.withdraw_codes
                raise InvalidGrantError(
                    "The authorization code was withdrawn: the user disconnected the app or narrowed their consent."
                )
            raise InvalidGrantError("The authorization code has expired.")
        if row.connection.revoked_at is not None:
            raise InvalidGrantError("The connection was removed after this code was issued.")
        return Code(row, row.connection)

    def delete_authorization_code(self, authorization_code: Code) -> None:
        token_store.mark_code_used(code=authorization_code.row)

    def authenticate_user(self, authorization_code: Code) -> Any:
        row = authorization_code.row
        if not row.user.is_active or authorization_code.connection.project.owner_id != row.user_id:
            return None
        return row.user


class RefreshGrant(RefreshTokenGrant):
    """Refresh with rotation (RFC 9700 §4.14.2): every use returns a new refresh token and retires the
    old one; presenting a retired one again revokes the whole family."""

    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_token_endpoint_client(self) -> Client:
        # As for codes: the refresh token (locked) is read first, with its app's credentials.
        presented = self.request.payload.data.get("refresh_token")
        self.request.presented_row = token_store.find_by_refresh_token(presented, lock=True) if presented else None
        client: Client = super().authenticate_token_endpoint_client()
        return client

    def authenticate_refresh_token(self, refresh_token: str) -> IssuedToken | None:
        row = self.request.presented_row  # the row of this request's ``refresh_token``
        client = self.request.client
        if row is None or row.app_id != client.app.pk:
            # Another client's token is not burnt, and is described as an unknown one: nothing tells them apart.
            raise InvalidGrantError("The refresh token is unknown, or was issued to another client.")
        if row.rotated_at is not None:
            revoked = token_store.revoke_family(family=row.family)
            audit.record(
                action="oauth.refresh_reuse_detected",
                obj=row.connection,
                data={
                    "client_id": client.app.client_id,
                    "family": str(row.family),
                    "tokens_revoked": revoked,
                },
                ip=_ip(self.request),
            )
            raise InvalidGrantError(
                "This refresh token was already used. Every token of this authorization has been revoked."
            )
        if row.connection.revoked_at is not None:
            raise InvalidGrantError("The user removed this connection. Ask them to connect the app again.")
        if row.refresh_revoked_at is not None:
            raise InvalidGrantError("The refresh token was revoked. Ask the user to connect the app again.")
        if not token_store.refresh_is_live(row):
            raise InvalidGrantError("The refresh token has expired. Ask the user to connect the app again.")
        if not row.user.is_active:
            # RFC 6749 §5.2: the grant no longer stands. Authlib's answer, after authenticate_user found no user,
            # was invalid_request, which says the request was malformed.
            raise InvalidGrantError("The user who granted this access is no longer active.")
        return IssuedToken(row, "refresh_token")

    def _validate_token_scope(self, token: IssuedToken) -> None:
        """RFC 6749 §6: a narrower scope may be asked for; anything not originally granted is refused."""
        requested = self.request.payload.scope
        if not requested:
            return
        try:
            wanted = scope_registry.normalize(requested)
        except scope_registry.UnknownScope as exc:
            raise InvalidScopeError(str(exc)) from exc
        extra = set(wanted) - set(token.row.refresh_scope_list)
        if extra:
            raise InvalidScopeError(f"Not granted originally: {', '.join(sorted(extra))}.")
        self.request.payload.data["scope"] = scope_registry.to_string(wanted)

    def authenticate_user(self, refresh_token: IssuedToken) -> Any:
        user = refresh_token.row.user
        return user if user.is_active else None

    def revoke_old_credential(self, refresh_token: IssuedToken) -> None:
        token_store.rotate(token=refresh_token.row)


# --- revocation and introspection --------------------------------------------------------------------


def _find_token(token_string: str, hint: str | None, *, cached: bool = False) -> IssuedToken | None:
    """Look the string up as the hinted kind first, then the other (RFC 7009 §2.1, RFC 7662 §2.1). ``cached``
    (introspection): an access token through the local token cache."""
    kinds = ["refresh_token", "access_token"] if hint == "refresh_token" else ["access_token", "refresh_token"]
    for kind in kinds:
        if kind == "refresh_token":
            row = token_store.find_by_refresh_token(token_string)
        elif cached and token_cache.mode() == "local":
            row = _access_through_local_cache(token_string)
        else:
            row = token_store.find_by_access_token(token_string)
        if row is not None:
            return IssuedToken(row, kind)
    return None


def _introspection_active(token: IssuedToken) -> bool:
    """RFC 7662 §2.2 ``active``: not revoked, not expired, and its grant stands (the answer, and what the local
    token cache keeps)."""
    return not token.is_revoked() and not token.is_expired() and active_for_api(token.row)


def _access_through_local_cache(token_string: str) -> Token | None:
    """Introspection of an access token with the local token cache (apertur.oauth.token_cache.local_row): the
    row from this process's memory, or from the database and kept while the token is active. The row carries
    the app's credentials the client authenticates against: a secret rotation invalidates the cache like a
    revocation does."""
    token_hash = tokens.hash_secret(token_string)
    now = clock.now()

    def active_until(row: Token) -> float | None:
        active = _introspection_active(IssuedToken(row, "access_token"))
        return row.access_expires_at.timestamp() if active else None

    return token_cache.local_row(
        f"introspect:{token_hash}",
        fetch=lambda: token_store.fetch_reported_by_access_hash(token_hash),
        build=token_store.reported_row,
        keep_until=active_until,
        now=now.timestamp(),
    )


class _PresentedTokenFirst:
    """Revocation and introspection read the presented token before authenticating the client, with its app's
    credentials, so the client that owns the token authenticates without a query of its own. Authlib's order of
    outcomes stays: client authentication fails first (401), then a missing ``token`` or an unsupported hint,
    then the answer about the token."""

    CLIENT_AUTH_METHODS = CLIENT_AUTH_METHODS
    server: AuthorizationServer

    #: Read access tokens through the local token cache (introspection; revocation always reads the database).
    CACHED = False

    def authenticate_endpoint_client(self, request: Request) -> Client:
        form = request.form
        token = form.get("token")
        request.presented = _find_token(token, form.get("token_type_hint"), cached=self.CACHED) if token else None
        request.presented_row = request.presented.row if request.presented is not None else None
        client = self.server.authenticate_client(request, self.CLIENT_AUTH_METHODS, self.ENDPOINT_NAME)  # type: ignore[attr-defined]
        request.client = client
        return client

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | None:
        return _find_token(token_string, token_type_hint)


class Revocation(_PresentedTokenFirst, rfc7009.RevocationEndpoint):
    def check_params(self, request: Request, client: Client) -> None:
        # RFC 7009 §2.1: "An invalid token type hint value is ignored by the authorization server and does not
        # influence the revocation response": _find_token searches both kinds whatever the hint. Authlib's
        # check answered unsupported_token_type, which §2.2.1 keeps for a type the server cannot revoke (every
        # token Apertur issues can be revoked), and left the token alive.
        if "token" not in request.form:
            raise InvalidRequestError("Missing 'token'.")

    def authenticate_token(self, request: Request, client: Client) -> IssuedToken | None:
        """Authlib's (RFC 7009 §2.1) with the token read by authenticate_endpoint_client. §2.1: the server
        verifies the token was issued to the requesting client and, if not, refuses the request and informs the
        client (§2.2.1: an RFC 6749 §5.2 error); ``invalid_grant`` is §5.2's code for a grant "issued to another
        client"."""
        self.check_params(request, client)
        token: IssuedToken | None = request.presented
        if token is not None and not token.check_client(client):
            raise InvalidGrantError("This token was issued to another client; a client can revoke only its own.")
        return token

    def revoke_token(self, token: IssuedToken, request: Request) -> None:
        # RFC 7009 §2.1: revoking a refresh token also invalidates the access tokens of that grant.
        if token.kind == "refresh_token":
            token_store.revoke_family(family=token.row.family)
        else:
            token_store.revoke_access(token=token.row)
        audit.record(
            action="oauth.token_revoked",
            obj=token.row.connection,
            data={
                "kind": token.kind,
                "family": str(token.row.family),
                "client_id": request.client.app.client_id,
            },
            ip=_ip(request),
        )


class Introspection(_PresentedTokenFirst, rfc7662.IntrospectionEndpoint):
    """RFC 7662. A client learns only about its own tokens; anything else is ``{"active": false}``."""

    CACHED = True

    def check_params(self, request: Request, client: Client) -> None:
        # RFC 7662 §2.1: the hint only speeds the search up; an unknown hint is ignored, not an error.
        if "token" not in request.form:
            raise InvalidRequestError("Missing 'token'.")

    def authenticate_token(self, request: Request, client: Client) -> IssuedToken | None:
        """Authlib's (RFC 7662 §2.1) with the token read by authenticate_endpoint_client."""
        self.check_params(request, client)
        token: IssuedToken | None = request.presented
        return token if token is not None and self.check_permission(token, client, request) else None

    def check_permission(self, token: IssuedToken, client: Client, request: Request) -> bool:
        return token.check_client(client)

    def create_introspection_payload(self, token: IssuedToken | None) -> dict[str, Any]:
        if token is None or not _introspection_active(token):
            return {"active": False}
        return self.introspect_token(token)

    def introspect_token(self, token: IssuedToken) -> dict[str, Any]:
        row: Any = token.row  # read by tokens.find_by_*_token, with the report_* annotations
        expires = row.access_expires_at if token.kind == "access_token" else row.refresh_expires_at
        return {
            "active": True,
            # RFC 7662 §2.2 ``scope``: this token's. A refresh token's is what it can still ask for (RFC 6749 §6),
            # which a narrowing refresh does not reduce; its access token's may be narrower.
            "scope": token.get_scope(),
            "client_id": row.app_client_id,
            "username": row.report_username,
            "token_type": "Bearer" if token.kind == "access_token" else "refresh_token",
            "exp": int(expires.timestamp()) if expires else None,
            "iat": int(row.issued_at.timestamp()),
            "sub": row.report_sub,
            "iss": settings.APERTUR_BASE_URL,
            "project_id": row.report_project_id,
            "livemode": row.livemode,
        }


def app_usable(*, app_active: bool, partner_status: str) -> bool:
    """``OAuthApp.objects.usable()`` for values already read: the app is active and its partner approved."""
    return bool(app_active and partner_status == PartnerStatus.APPROVED)


def grant_stands(*, app_active: bool, partner_status: str, connection_revoked_at: Any, user_active: bool) -> bool:
    """A token's grant still stands: app usable (active, partner approved), connection not removed, and the
    customer who granted it still active."""
    return (
        app_usable(app_active=app_active, partner_status=partner_status)
        and connection_revoked_at is None
        and bool(user_active)
    )


def presented_client(row: Any, client_id: str) -> Client | None:
    """The client a presented code's or token's row names (read with ``tokens.APP_CREDENTIALS``), when it is
    ``client_id`` and usable: the client ``_authenticating_client`` would read, built from the row instead of
    queried (same columns; its secret is then checked as usual). Otherwise None, and the client is queried."""
    if row is None or row.app_client_id != client_id:
        return None
    if not app_usable(app_active=row.grant_app_active, partner_status=row.grant_partner_status):
        return None
    credentials = [getattr(row, f"app_{name}") for name in CREDENTIAL_FIELDS]
    app = OAuthApp.from_db(
        DEFAULT_DB_ALIAS, ["id", "client_id", *CREDENTIAL_FIELDS], [row.app_id, client_id, *credentials]
    )
    return Client(app)


def active_for_api(row: Any) -> bool:
    """:func:`grant_stands` for a token read by ``tokens.find_by_*_token`` (its connection, and the grant_*
    annotations)."""
    return grant_stands(
        app_active=row.grant_app_active,
        partner_status=row.grant_partner_status,
        connection_revoked_at=row.connection.revoked_at,
        user_active=row.grant_user_active,
    )


# --- the server --------------------------------------------------------------------------------------


def basic_credentials(header: str) -> tuple[str, str | None] | None:
    """The client_id and client_secret of an ``Authorization: Basic`` header (RFC 7617 §2; RFC 6749 §2.3.1: each
    form-urlencoded first), the secret None when there is no colon; None when the header is not Basic. Raises
    ``ValueError`` when it is Basic but unreadable: blank, not base64, or not UTF-8 inside. Authlib's parser
    crashed on these (an unpacking error, a ``ValueError`` or a ``UnicodeDecodeError``: a 500)."""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    value = value.strip()
    if not value:
        raise ValueError("blank Basic credentials")
    decoded = base64.b64decode(value).decode("utf-8")  # binascii.Error and UnicodeDecodeError are ValueErrors
    client_id, colon, secret = decoded.partition(":")
    return unquote(client_id), unquote(secret) if colon else None


def refuse_several_client_credentials(request: Any) -> None:
    """RFC 6749 §2.3: "The client MUST NOT use more than one authentication method in each request." Authlib
    tries HTTP Basic, then the body, and takes the first that succeeds, so a wrong second credential was
    ignored. The token, revocation and introspection endpoints all authenticate here, before any credential
    is checked.

    - HTTP Basic and a ``client_secret`` in the body are two methods: refused. §5.2 names the error:
      ``invalid_request`` (400) for a request that "includes multiple credentials, utilizes more than one
      mechanism for authenticating the client"; ``invalid_client`` is for authentication that failed, and no
      credential has been checked yet.
    - HTTP Basic with a body ``client_id`` naming another client carries two identities: refused the same way.
    - HTTP Basic with a body ``client_id`` naming the same client is allowed: a ``client_id`` alone
      authenticates nothing (§2.3.1 is the id and the secret together), §4.1.3 only makes it optional for an
      authenticating client, and common client libraries send it alongside Basic.

    An empty parameter counts as omitted (§3.1). Basic credentials that cannot be read are ``invalid_client``
    (401), as credentials that name no client are."""
    try:
        basic = basic_credentials(request.headers.get("Authorization") or "")
    except ValueError as exc:
        raise InvalidClientError(status_code=401) from exc
    if basic is None:
        return
    form = request.form
    if form.get("client_secret"):
        raise InvalidRequestError(
            "Use one client authentication method: HTTP Basic, or client_id and client_secret in the body, not both."
        )
    body_client_id = form.get("client_id")
    basic_client_id = basic[0]
    if body_client_id and body_client_id != basic_client_id:
        raise InvalidRequestError("The client_id in the body is not the one in the HTTP Basic credentials.")


def _ip(request: Any) -> str | None:
    from apertur.core.http import client_ip

    django_request = getattr(request, "django_request", None)
    return client_ip(django_request) if django_request is not None else None


class AuthorizationServer(rfc6749.AuthorizationServer):
    def __init__(self) -> None:
        super().__init__(scopes_supported=scope_registry.SUPPORTED)
        self.register_token_generator("default", self._generate_token)
        self.register_grant(CodeGrant, [S256CodeChallenge(required=False)])
        self.register_grant(RefreshGrant)
        self.register_endpoint(Revocation)
        self.register_endpoint(Introspection)

    # Authlib hooks ---------------------------------------------------------------------------------

    def query_client(self, client_id: str) -> Client | None:
        if not lookable(client_id):
            return None
        app = _usable_client.first(client_id)
        return Client(app) if app is not None else None

    def _authenticating_client(self, client_id: str) -> Client | None:
        if not lookable(client_id):
            return None
        app = _authenticating_client.first(client_id)
        return Client(app) if app is not None else None

    def authenticate_client(self, request: Any, methods: list[str], endpoint: str = "token") -> Client:
        """RFC 6749 §2.3.1 client authentication at the token, revocation and introspection endpoints, with
        Authlib's methods over the narrow client lookup (the authorization endpoint reads whole apps). When the
        request's code or token was read first (``request.presented_row``) and belongs to the client named, the
        client comes from that row: one query less on every token request of a client with its own code or
        token; the secret is checked against the same stored hash either way."""
        refuse_several_client_credentials(request)
        row = getattr(request, "presented_row", None)
        named: list[Client] = []

        def query_client(client_id: str) -> Client | None:
            found = (presented_client(row, client_id) if row is not None else None) or self._authenticating_client(
                client_id
            )
            if found is not None:
                named.append(found)
            return found

        try:
            client: Client = ClientAuthentication(query_client)(request, methods, endpoint)
        except InvalidClientError:
            if named:  # a known client with a secret that does not authenticate it: the partner sees it
                oauth_services.record_failed_authentication(app=named[-1].app, ip=_ip(request), endpoint=endpoint)
            raise
        if client.used_previous_secret:
            oauth_services.record_previous_secret_use(app=client.app)
        return client

    def get_authorization_grant(self, request: Any) -> Any:
        """RFC 6749 §4.1.2.1: a missing ``response_type`` is a missing required parameter (``invalid_request``);
        ``unsupported_response_type`` is for a value the server does not support. Authlib answers the latter
        for both, with a garbled description (its message passed as the response type). Either error carries the
        redirect URI only when it is the client's validated one (Authlib's rule), and get_consent_grant adds the
        state, so it goes back to the client; otherwise Apertur shows it."""
        if any(grant_cls.check_authorization_endpoint(request) for grant_cls, _ in self._authorization_grants):
            return super().get_authorization_grant(request)
        # Not Authlib's refusal: it put the response_type in its description, and building that failed (a 500) for
        # a value with a character §4.1.2.1 excludes from error_description. Its redirect URI rule, as it was:
        redirect_uri = None
        client = self.query_client(request.payload.client_id) if request.payload.client_id else None
        if client is not None:
            requested = request.payload.redirect_uri
            if not requested:
                redirect_uri = client.get_default_redirect_uri()
            elif client.check_redirect_uri(requested):
                redirect_uri = requested
        if not request.payload.response_type:
            raise InvalidRequestError("Missing 'response_type': it must be code.", redirect_uri=redirect_uri)
        raise UnsupportedResponseType(GENERIC_DESCRIPTIONS["unsupported_response_type"], redirect_uri=redirect_uri)

    def create_token_response(self, request: Any = None) -> HttpResponse:
        """RFC 6749 §5.2: a request without ``grant_type`` misses a required parameter, which is
        ``invalid_request``; Authlib would answer ``unsupported_grant_type``, meant for a type it does not know."""
        oauth_request = self.create_oauth2_request(request)
        if not oauth_request.payload.grant_type:
            return self.handle_error_response(oauth_request, InvalidRequestError("Missing 'grant_type'."))
        response: HttpResponse = super().create_token_response(oauth_request)
        return response

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        if request.method == "GET":
            return Request(request, {k: request.GET.getlist(k) for k in request.GET})
        return Request(request, body_params(request))

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> HttpResponse:
        response = HttpResponse(json.dumps(body) if isinstance(body, dict) else body, status=status)
        for key, value in headers:
            response[key] = value
        response["Cache-Control"] = "no-store"
        response["Pragma"] = "no-cache"
        return response

    def handle_error_response(self, request: Any, error: OAuth2Error) -> HttpResponse:
        # RFC 6749 §5.2: invalid_client is a 401 with a WWW-Authenticate challenge. Its description is always
        # ours: Authlib's either lists its method names ("cannot authenticate with methods: [...]"), which
        # says nothing about what to change, or says that the client does not exist, which a wrong secret
        # would not: one answer for every failure reveals nothing about which client ids exist.
        if isinstance(error, InvalidClientError):
            error.status_code = 401
            error.description = GENERIC_DESCRIPTIONS["invalid_client"]
        # Every error answer of these endpoints passes here: the one place the description is made non-empty
        # (the body and Authlib's WWW-Authenticate challenge read ``description``).
        error.description = describe(error)
        response: HttpResponse = super().handle_error_response(request, error)
        if isinstance(error, InvalidClientError):
            # RFC 7617 §2: realm is REQUIRED in a Basic challenge; Authlib's has none.
            response["WWW-Authenticate"] = (
                f'Basic realm="{REALM}", error="{error.error}", error_description="{error.description}"'
            )
        return response

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def validate_requested_scope(self, scope: str | None) -> None:
        try:
            scope_registry.normalize(scope)
        except scope_registry.UnknownScope as exc:
            raise InvalidScopeError(str(exc)) from exc

    # Tokens -------------------------------------------------------------------------------------------

    def _generate_token(
        self,
        grant_type: str,
        client: Client,
        user: Any = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        token: dict[str, Any] = {
            "access_token": token_store.new_access_token(),
            "token_type": "Bearer",
            "expires_in": int(token_store.ACCESS_TTL.total_seconds()),
            "scope": scope or "",
        }
        if include_refresh_token:
            token["refresh_token"] = token_store.new_refresh_token()
        return token

    def save_token(self, token: dict[str, Any], request: Request) -> Token:
        """Store the hashes and complete the response the way the seeds document it."""
        granted = scope_registry.split(token["scope"])
        if request.authorization_code is not None:
            code_row: AuthorizationCode = request.authorization_code.row
            connection = request.authorization_code.connection
            row = token_store.issue(
                connection=connection,
                scopes=granted,
                livemode=code_row.livemode,
                access_token=token["access_token"],
                refresh_token=token["refresh_token"],
                code=code_row,
            )
            action = "oauth.token_issued"
        else:
            parent: Token = request.refresh_token.row
            connection = parent.connection  # read with the token (select_related), as are its project and plan
            row = token_store.issue(
                connection=connection,
                scopes=granted,
                livemode=parent.livemode,
                access_token=token["access_token"],
                refresh_token=token["refresh_token"],
                parent=parent,
            )
            action = "oauth.token_refreshed"
        token_store.record_audit(
            action=action,
            obj=connection,
            data={"client_id": request.client.app.client_id, "family": str(row.family), "scopes": granted},
            ip=_ip(request),
        )
        project = row.project = (
            request.authorization_code.connection.project
            if request.authorization_code is not None
            else request.refresh_token.row.project
        )
        token.update(
            {
                "scopes": granted,
                "project_id": project.public_id,
                "plan": project.plan.as_json(),
                "livemode": row.livemode,
            }
        )
        return row


server = AuthorizationServer()
