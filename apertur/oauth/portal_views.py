"""Partner portal pages for OAuth apps. Thin: parse, call one service or selector, render."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from apertur.accounts.models import User
from apertur.core import clock
from apertur.core.errors import AperturError
from apertur.core.forms import add_problems
from apertur.core.http import client_ip, pop_once, show_once
from apertur.core.pages import PAGE_SIZE, page_of
from apertur.core.rolling import roll_secret_form
from apertur.oauth import selectors, services
from apertur.oauth.errors import AppNotFound
from apertur.oauth.forms import AppForm, DeleteForm
from apertur.oauth.models import KeyMode, OAuthApp
from apertur.partners.decorators import approved_partner_required
from apertur.partners.models import Partner

# The one-time secret travels from the POST that made it to the page that shows it in the session, and
# is removed from the session by the first page that renders it: a reload no longer shows it.
_ONCE_KEY = "oauth_secret_once"


def _actor(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _show_once(request: HttpRequest, app: OAuthApp, secret: str) -> None:
    show_once(request, _ONCE_KEY, page=app.client_id, secret=secret)


def _pop_once(request: HttpRequest, app: OAuthApp) -> str | None:
    once = pop_once(request, _ONCE_KEY, page=app.client_id)
    return str(once["secret"]) if once else None


def _apply_error(form: AppForm | DeleteForm, exc: AperturError) -> None:
    """Each problem by its field (the service reports all it found at once), the rest above the form."""
    add_problems(form, exc)


@approved_partner_required
def app_list(request: HttpRequest, partner: Partner) -> HttpResponse:
    page = page_of(selectors.app_list(partner=partner), page=request.GET.get("page"), size=PAGE_SIZE, rows=list)
    return render(
        request, "oauth/app_list.html", {"partner": partner, "apps": page.rows, "page": page, "section": "apps"}
    )


def _app_form(request: HttpRequest, partner: Partner, app: OAuthApp | None) -> HttpResponse:
    """The New OAuth App and Edit settings form: one page, one rule set (the service's, which the form asks
    for every problem at once)."""
    initial = {}
    if app is not None:
        initial = {
            "name": app.name,
            "description": app.description,
            "website": app.website,
            "redirect_uris": "\n".join(app.redirect_uris.values_list("uri", flat=True)),
            "allowed_domains": "\n".join(app.allowed_domains.values_list("pattern", flat=True)),
        }
    form = AppForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            fields = {
                "name": form.cleaned_data["name"],
                "description": form.cleaned_data["description"],
                "website": form.cleaned_data["website"],
                "redirect_uris": form.redirect_uri_list(),
                "allowed_domains": form.allowed_domain_list(),
                "actor": _actor(request),
                "ip": client_ip(request),
            }
            try:
                if app is None:
                    created = services.create_app(partner=partner, **fields)
                    _show_once(request, created.app, created.client_secret)
                    messages.success(request, f"OAuth app “{created.app.name}” created.")
                    return redirect("partners:apps:detail", client_id=created.app.client_id)
                services.update_app(app=app, **fields)
                messages.success(request, "App settings saved.")
                return redirect("partners:apps:detail", client_id=app.client_id)
            except AperturError as exc:
                _apply_error(form, exc)
        status = 400
    context = {"partner": partner, "form": form, "app": app, "section": "apps"}
    return render(request, "oauth/app_form.html", context, status=status)


@approved_partner_required
@require_http_methods(["GET", "POST"])
def app_new(request: HttpRequest, partner: Partner) -> HttpResponse:
    return _app_form(request, partner, None)


def _partner_app(partner: Partner, client_id: str) -> OAuthApp:
    """The partner's own app, or Http404: another partner's app is indistinguishable from none."""
    try:
        return selectors.app_for_partner(partner=partner, client_id=client_id)
    except AppNotFound as exc:
        raise Http404(exc.message) from exc


@never_cache
@approved_partner_required
def app_detail(request: HttpRequest, partner: Partner, client_id: str) -> HttpResponse:
    app = _partner_app(partner, client_id)
    context = {
        "partner": partner,
        "app": app,
        "section": "apps",
        "secret": _pop_once(request, app),
        "previous_secret_until": app.previous_secret_valid_until(clock.now()),
        "live_key": selectors.active_public_key(app=app, mode=KeyMode.LIVE),
        "test_key": selectors.active_public_key(app=app, mode=KeyMode.TEST),
        "redirect_uris": list(app.redirect_uris.all()),
        "allowed_domains": list(app.allowed_domains.all()),
    }
    return render(request, "oauth/app_detail.html", context)


@approved_partner_required
@require_http_methods(["GET", "POST"])
def app_edit(request: HttpRequest, partner: Partner, client_id: str) -> HttpResponse:
    return _app_form(request, partner, _partner_app(partner, client_id))


# Each destructive action has a confirmation page (GET) and the action itself (POST, CSRF-protected).
_ACTIONS = {
    "rotate-secret": (
        "Rotate client secret",
        "Every server that calls Apertur's token endpoints must be updated with the new secret. Choose how long the "
        "current one keeps working beside it, so they can switch without a failed request.",
    ),
    "regenerate-live-key": (
        "Regenerate live public key",
        "The current live public key stops working immediately. Update every page that embeds it.",
    ),
    "regenerate-test-key": (
        "Regenerate test public key",
        "The current test public key stops working immediately.",
    ),
    "deactivate": (
        "Deactivate app",
        "Users can no longer connect, and the app's client credentials and "
        "public keys stop working until you reactivate it.",
    ),
    "reactivate": ("Reactivate app", "The app's client credentials and public keys work again."),
    "delete": (
        "Delete app",
        "This permanently deletes the app, its credentials and its keys. It cannot be undone.",
    ),
}


@approved_partner_required
@require_http_methods(["GET", "POST"])
def app_action(request: HttpRequest, partner: Partner, client_id: str, action: str) -> HttpResponse:
    if action not in _ACTIONS:
        raise Http404("Unknown action.")
    app = _partner_app(partner, client_id)
    if (action == "reactivate" and app.is_active) or (action == "deactivate" and not app.is_active):
        # Nothing to confirm (an old tab, a bookmark): say where the app stands.
        messages.info(request, f"{app.name} is already {'active' if app.is_active else 'deactivated'}.")
        return redirect("partners:apps:detail", client_id=app.client_id)
    title, warning = _ACTIONS[action]
    delete_form = DeleteForm(request.POST or None) if action == "delete" else None
    context = {
        "partner": partner,
        "app": app,
        "action": action,
        "title": title,
        "warning": warning,
        "form": delete_form,
        "section": "apps",
    }
    if action == "rotate-secret":
        return _roll_secret(request, app, context)
    if request.method == "GET":
        return render(request, "oauth/app_confirm.html", context)
    actor, ip = _actor(request), client_ip(request)
    try:
        if action in {"regenerate-live-key", "regenerate-test-key"}:
            mode = KeyMode.LIVE if action == "regenerate-live-key" else KeyMode.TEST
            services.regenerate_public_key(app=app, mode=mode, actor=actor, ip=ip)
            messages.success(request, f"New {mode.label.lower()} public key created. The old one no longer works.")
        elif action == "deactivate":
            services.deactivate_app(app=app, actor=actor, ip=ip)
            messages.success(request, "App deactivated.")
        elif action == "reactivate":
            services.reactivate_app(app=app, actor=actor, ip=ip)
            messages.success(request, "App reactivated.")
        else:
            assert delete_form is not None
            delete_form.is_valid()
            services.delete_app(
                app=app, confirm_name=delete_form.cleaned_data.get("confirm_name", ""), actor=actor, ip=ip
            )
            messages.success(request, f"App “{app.name}” deleted.")
            return redirect("partners:apps:list")
    except AppNotFound:  # deleted meanwhile (another tab): what this form asked for is done
        messages.info(request, f"App “{app.name}” was already deleted.")
        return redirect("partners:apps:list")
    except AperturError as exc:
        if delete_form is not None:
            _apply_error(delete_form, exc)
        else:
            messages.error(request, exc.message)
        return render(request, "oauth/app_confirm.html", context, status=400)
    return redirect("partners:apps:detail", client_id=app.client_id)


def _roll_secret(request: HttpRequest, app: OAuthApp, context: dict[str, Any]) -> HttpResponse:
    """Rotate client secret: the roll form of every secret (``core.rolling``), then the app's page, which shows the
    new secret once. "Now" is chosen until the partner picks an overlap, and a POST without a choice (a script
    written before overlaps existed) rotates at once: the old secret stops working, as this action always did
    (a rotation is often because the secret leaked); keeping it a while is the partner's explicit choice."""
    rolled, form = roll_secret_form(
        request,
        row=app,
        current=app.client_secret_hash,
        rotate=lambda overlap, replacing: services.rotate_secret(
            app=app, actor=_actor(request), ip=client_ip(request), expire_previous_in=overlap, replacing=replacing
        ),
        initial="0",
        unposted="0",
    )
    if form.get("rolled_meanwhile"):
        return redirect("partners:apps:detail", client_id=app.client_id)
    if rolled is None:
        status = 400 if request.method == "POST" else 200
        back = reverse("partners:apps:detail", args=[app.client_id])
        return render(request, "oauth/app_confirm.html", {**context, **form, "roll": True, "back": back}, status=status)
    _show_once(request, app, rolled)
    app.refresh_from_db(fields=["previous_client_secret_expires_at"])
    until = app.previous_client_secret_expires_at
    if until is None:
        messages.success(request, "New client secret created. The old one no longer works.")
    else:
        when = timezone.localtime(until).strftime("%Y-%m-%d %H:%M %Z")
        messages.success(request, f"New client secret created. The old one keeps working until {when}.")
    return redirect("partners:apps:detail", client_id=app.client_id)
