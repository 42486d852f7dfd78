from __future__ import annotations

import datetime as dt
import enum

from django.db import models

from apertur.core import clock, tokens
from apertur.core.rolling import overlap_ends
from apertur.oauth.scopes import SCOPES
from apertur.partners.models import Partner, PartnerStatus

APP_NAME_MAX_LENGTH = 80  # the column, the service's rule and the form's maxlength


class SecretMatch(enum.Enum):
    CURRENT = "current"
    PREVIOUS = "previous"


class OAuthAppQuerySet(models.QuerySet["OAuthApp"]):
    def usable(self) -> OAuthAppQuerySet:
        """Apps whose credentials work right now: active, and owned by an approved (not suspended)
        partner. Read on every check, so deactivation and suspension take effect at once."""
        return self.filter(is_active=True, partner__status=PartnerStatus.APPROVED)


#: The columns client authentication reads (``OAuthApp.client_secret_matches``): the token endpoints' narrow reads
#: of an app, alone or joined to a code or token (``tokens.APP_CREDENTIALS``), select these and no more.
CREDENTIAL_FIELDS = (
    "client_secret_hash",
    "previous_client_secret_hash",
    "previous_client_secret_expires_at",
    "previous_client_secret_last_used_at",
)


class OAuthApp(models.Model):
    partner = models.ForeignKey(Partner, on_delete=models.CASCADE, related_name="oauth_apps")
    name = models.CharField(max_length=APP_NAME_MAX_LENGTH)
    description = models.TextField(blank=True)
    website = models.URLField(max_length=300, blank=True)
    client_id = models.CharField(max_length=64, unique=True)
    client_secret_hash = models.CharField(max_length=64)
    client_secret_last4 = models.CharField(max_length=4)
    client_secret_rotated_at = models.DateTimeField(default=clock.now)
    # After a roll with an overlap (``core.rolling``), the secret it replaced also authenticates the client until
    # ``previous_client_secret_expires_at``, so the partner's servers can switch without failing meanwhile; empty
    # otherwise, and forgotten by the hourly housekeeping once past.
    previous_client_secret_hash = models.CharField(max_length=64, blank=True)
    previous_client_secret_last4 = models.CharField(max_length=4, blank=True)
    previous_client_secret_expires_at = models.DateTimeField(null=True, blank=True)
    # What the app's page tells the partner about its credentials in use (``services.record_*``, at most once a
    # minute each): when the previous secret was last presented (is a server still on it?), and the last failed
    # authentication of this client (a server with a wrong or expired secret, or someone guessing).
    previous_client_secret_last_used_at = models.DateTimeField(null=True, blank=True)
    last_failed_auth_at = models.DateTimeField(null=True, blank=True)
    last_failed_auth_ip = models.GenericIPAddressField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=clock.now)
    updated_at = models.DateTimeField(default=clock.now)

    objects = OAuthAppQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = "OAuth app"

    def __str__(self) -> str:
        return f"{self.name} ({self.client_id})"

    @property
    def is_usable(self) -> bool:
        return self.is_active and self.partner.status == PartnerStatus.APPROVED

    def previous_secret_valid_until(self, at: dt.datetime) -> dt.datetime | None:
        """When the secret replaced by the last roll stops working, if it still works at ``at``; otherwise None."""
        return overlap_ends(
            previous=self.previous_client_secret_hash, expires=self.previous_client_secret_expires_at, at=at
        )

    def matching_client_secret(self, secret: str) -> SecretMatch | None:
        """RFC 6749 §2.3.1: the one rule of which client secrets authenticate this app: the current one, and during
        a roll's overlap the one it replaced (which of the two matched, or None). Each is compared in constant time
        (a hash of the presented value against the stored hash): no secret is stored."""
        if tokens.secret_matches(secret, self.client_secret_hash):
            return SecretMatch.CURRENT
        if self.previous_secret_valid_until(clock.now()) is not None and tokens.secret_matches(
            secret, self.previous_client_secret_hash
        ):
            return SecretMatch.PREVIOUS
        return None

    def client_secret_matches(self, secret: str) -> bool:
        return self.matching_client_secret(secret) is not None


class RedirectURI(models.Model):
    app = models.ForeignKey(OAuthApp, on_delete=models.CASCADE, related_name="redirect_uris")
    uri = models.CharField(max_length=2000)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["app", "uri"], name="redirect_uri_unique_per_app")]

    def __str__(self) -> str:
        return self.uri


class AllowedDomain(models.Model):
    app = models.ForeignKey(OAuthApp, on_delete=models.CASCADE, related_name="allowed_domains")
    pattern = models.CharField(max_length=260)
    created_at = models.DateTimeField(default=clock.now)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["app", "pattern"], name="allowed_domain_unique_per_app")]

    def __str__(self) -> str:
        return self.pattern


class KeyMode(models.TextChoices):
    LIVE = "live", "Live"
    TEST = "test", "Test"


class PublicKey(models.Model):
    """A publishable key (``aptr_live_pk_…`` / ``aptr_test_pk_…``). It is not a secret (it ships in
    front-end code), so it is stored as is and looked up directly. Regenerating deactivates the old key
    and adds a new one; history is kept for the audit trail."""

    app = models.ForeignKey(OAuthApp, on_delete=models.CASCADE, related_name="public_keys")
    mode = models.CharField(max_length=4, choices=KeyMode.choices)
    key = models.CharField(max_length=80, unique=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=clock.now)
    deactivated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["app", "mode"],
                condition=models.Q(is_active=True),
                name="one_active_public_key_per_app_and_mode",
            )
        ]

    def __str__(self) -> str:
        return self.key


class Connection(models.Model):
    """One per app × project: what the customer sees and revokes, and what OAuth attribution reads.
    Re-authorizing the same app for the same project updates this row."""

    app = models.ForeignKey(OAuthApp, on_delete=models.CASCADE, related_name="connections")
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="oauth_connections")
    user = models.ForeignKey("accounts.User", on_delete=models.CASCADE, related_name="+")
    scopes = models.TextField()
    created_at = models.DateTimeField(default=clock.now)
    updated_at = models.DateTimeField(default=clock.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["app", "project"], name="one_connection_per_app_project")]

    def __str__(self) -> str:
        return f"{self.app.name} → {self.project.name}"

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()

    @property
    def scope_descriptions(self) -> list[tuple[str, str]]:
        """(scope, the consent page's plain words for it): what the owner sees the app may do."""
        return [(name, SCOPES.get(name, name)) for name in self.scope_list]

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class AuthorizationCode(models.Model):
    """A single-use code (RFC 6749 §4.1.2), stored as a hash, bound to the app, redirect URI, user,
    project, scopes and PKCE challenge (RFC 7636 §4.4)."""

    code_hash = models.CharField(max_length=64, unique=True)
    app = models.ForeignKey(OAuthApp, on_delete=models.CASCADE, related_name="+")
    # The app × project connection the consent created or renewed (same app and project as the code): the
    # token endpoint reads it with the code, in the same query, and refuses the code once it is disconnected.
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey("accounts.User", on_delete=models.CASCADE, related_name="+")
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="+")
    scopes = models.TextField()
    # The redirect_uri the authorization request carried ("" when it relied on the only registered one):
    # RFC 6749 §4.1.3 requires the token request to repeat it exactly when it was sent.
    redirect_uri = models.CharField(max_length=2000, blank=True)
    code_challenge = models.CharField(max_length=128, blank=True)
    code_challenge_method = models.CharField(max_length=10, blank=True)
    livemode = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=clock.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["expires_at"])]

    def __str__(self) -> str:
        return f"code {self.pk} for {self.app_id}"


class Token(models.Model):
    """One issuance: an access token and its refresh token, both stored as hashes.

    Rotation (RFC 9700 §4.14.2) creates a new row in the same ``family``; the old row's refresh token is
    marked rotated. Presenting a rotated refresh token again is reuse: the whole family is revoked.
    """

    # Unique through Meta.constraints rather than unique=True: the same unique index, without the second
    # (LIKE-pattern) index PostgreSQL gets for unique text fields, which no query uses and every token issued
    # would maintain.
    access_token_hash = models.CharField(max_length=64)
    refresh_token_hash = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001 (unique: NULLs never collide)
    app = models.ForeignKey(OAuthApp, on_delete=models.CASCADE, related_name="+")
    # No index of its own: the (connection, access_revoked_at) index below starts with it, and every token
    # issued would otherwise update one more B-tree.
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="tokens", db_index=False)
    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey("accounts.User", on_delete=models.CASCADE, related_name="+")
    scopes = models.TextField()  # what the access token may do
    # What the refresh token may ask for again: RFC 6749 §6 keeps it identical to the original grant even
    # when a refresh asks for a narrower access token. Empty means the same as ``scopes``.
    refresh_scopes = models.TextField(blank=True)
    livemode = models.BooleanField(default=True)
    # A family is a code's tokens and their rotations; in id order its rows are the chain of refreshes (a refresh
    # locks and rotates the newest, so there is one chain). No link to the row before: deleting a dead row then
    # set its successor's link to NULL, an UPDATE of a live row from the housekeeping (see prune_dead_tokens).
    family = models.UUIDField(db_index=True)
    authorization_code = models.ForeignKey(
        AuthorizationCode, null=True, blank=True, on_delete=models.SET_NULL, related_name="tokens"
    )
    issued_at = models.DateTimeField(default=clock.now)
    access_expires_at = models.DateTimeField()
    refresh_expires_at = models.DateTimeField(null=True, blank=True)
    access_revoked_at = models.DateTimeField(null=True, blank=True)
    refresh_revoked_at = models.DateTimeField(null=True, blank=True)
    rotated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["connection", "access_revoked_at"])]
        constraints = [
            models.UniqueConstraint(fields=["access_token_hash"], name="oauth_token_access_token_hash_unique"),
            models.UniqueConstraint(fields=["refresh_token_hash"], name="oauth_token_refresh_token_hash_unique"),
        ]

    def __str__(self) -> str:
        return f"token {self.pk} ({self.family})"

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()

    @property
    def refresh_scope_list(self) -> list[str]:
        return (self.refresh_scopes or self.scopes).split()
