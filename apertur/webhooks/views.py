"""The project owner's webhook pages: endpoints, their delivery logs, test events."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apertur.accounts.models import User
from apertur.core import clock
from apertur.core.errors import AperturError, RateLimited
from apertur.core.http import client_ip, pop_once, show_once
from apertur.core.pages import PAGE_SIZE, page_of
from apertur.core.rolling import roll_secret_form
from apertur.projects.http import owned_project
from apertur.webhooks import selectors, services
from apertur.webhooks.models import SUBSCRIBABLE_EVENT_TYPES, WebhookEndpoint

# A new endpoint's signing secret is shown on the next page once, like API keys and client secrets.
_SECRET_ONCE = "webhook_secret_once"


def _owner(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _endpoint(request: HttpRequest, public_id: str, endpoint_id: str) -> WebhookEndpoint:
    endpoint = selectors.endpoint_for_project(project=owned_project(request, public_id), public_id=endpoint_id)
    if endpoint is None:
        raise Http404("No such webhook endpoint.")
    return endpoint


@login_required
@require_http_methods(["GET", "POST"])
def endpoint_new(request: HttpRequest, public_id: str) -> HttpResponse:
    project = owned_project(request, public_id)
    error = error_field = None
    if request.method == "POST":
        events = request.POST.getlist("events") or ["*"]
        try:
            endpoint = services.create_endpoint(
                project=project,
                url=request.POST.get("url", ""),
                events=events,
                description=request.POST.get("description", ""),
                actor=_owner(request),
                ip=client_ip(request),
            )
        except AperturError as exc:
            error, error_field = exc.message, exc.field
        else:
            show_once(request, _SECRET_ONCE, page=endpoint.public_id, secret=endpoint.secret)
            messages.success(request, "Webhook endpoint added.")
            return redirect("webhooks:detail", public_id=public_id, endpoint_id=endpoint.public_id)
    context = {
        "project": project,
        "event_types": SUBSCRIBABLE_EVENT_TYPES.items(),
        "error": error,
        "error_field": error_field,
        "form": request.POST,
        "checked_events": request.POST.getlist("events"),  # a refused form keeps what was ticked
    }
    return render(request, "webhooks/new.html", context, status=400 if error else 200)


@never_cache  # it shows the signing secret once: Back must not bring it back from the browser's cache
@login_required
# Not require_safe: the page pops the signing secret shown once after creation, and a HEAD would
# consume it without showing it.
@require_GET
def endpoint_detail(request: HttpRequest, public_id: str, endpoint_id: str) -> HttpResponse:
    endpoint = _endpoint(request, public_id, endpoint_id)
    once = pop_once(request, _SECRET_ONCE, page=endpoint.public_id)
    deliveries = page_of(
        selectors.delivery_log(endpoint=endpoint), page=request.GET.get("page"), size=PAGE_SIZE, rows=list
    )
    context = {
        "endpoint": endpoint,
        "project": endpoint.project,
        "deliveries": deliveries,
        "secret": once["secret"] if once else None,
        "rolled": bool(once and once.get("rolled")),
        "previous_secret_until": endpoint.previous_secret_valid_until(clock.now()),
        "kept_days": services.EVENTS_KEPT.days,
    }
    return render(request, "webhooks/detail.html", context)


@login_required
@require_POST
def endpoint_test(request: HttpRequest, public_id: str, endpoint_id: str) -> HttpResponse:
    try:
        services.send_test_event(endpoint=_endpoint(request, public_id, endpoint_id))
    except RateLimited as exc:
        messages.error(request, exc.wait_message("test events"))
    else:
        messages.success(request, "Test event queued; it appears in the log below once attempted.")
    return redirect("webhooks:detail", public_id=public_id, endpoint_id=endpoint_id)


@login_required
@require_http_methods(["GET", "POST"])
def endpoint_switch(request: HttpRequest, public_id: str, endpoint_id: str, on: bool) -> HttpResponse:
    """Disable or enable an endpoint (``on`` comes from the URL), after a page that says where events go."""
    endpoint = _endpoint(request, public_id, endpoint_id)
    if endpoint.enabled == on:  # already so: nothing to confirm
        return redirect("webhooks:detail", public_id=public_id, endpoint_id=endpoint_id)
    if request.method == "POST":
        try:
            services.update_endpoint(endpoint=endpoint, enabled=on, actor=_owner(request), ip=client_ip(request))
        except RateLimited as exc:  # enabling counts as a change (turning off never does)
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Webhook endpoint {'enabled' if on else 'disabled'}.")
        return redirect("webhooks:detail", public_id=public_id, endpoint_id=endpoint_id)
    return render(request, "webhooks/switch.html", {"endpoint": endpoint, "project": endpoint.project, "on": on})


@login_required
@require_http_methods(["GET", "POST"])
def endpoint_delete(request: HttpRequest, public_id: str, endpoint_id: str) -> HttpResponse:
    endpoint = selectors.endpoint_for_project(project=owned_project(request, public_id), public_id=endpoint_id)
    if endpoint is None:
        if request.method != "POST":
            raise Http404("No such webhook endpoint.")
        # Deleted already (a double click, another tab): what this form asked for is done; say so.
        messages.info(request, "This webhook endpoint no longer exists: it was deleted.")
        return redirect("projects:detail", public_id=public_id)
    if request.method == "POST":
        services.delete_endpoint(endpoint=endpoint, actor=_owner(request), ip=client_ip(request))
        messages.success(request, "Webhook endpoint deleted.")
        return redirect("projects:detail", public_id=public_id)
    return render(request, "webhooks/delete.html", {"endpoint": endpoint, "project": endpoint.project})


@login_required
@require_http_methods(["GET", "POST"])
def endpoint_roll_secret(request: HttpRequest, public_id: str, endpoint_id: str) -> HttpResponse:
    endpoint = _endpoint(request, public_id, endpoint_id)
    rolled, form = roll_secret_form(
        request,
        row=endpoint,
        current=endpoint.secret,
        rotate=lambda overlap, replacing: services.rotate_secret(
            endpoint=endpoint,
            expire_previous_in=overlap,
            actor=_owner(request),
            ip=client_ip(request),
            replacing=replacing,
        ),
    )
    if rolled is not None:
        show_once(request, _SECRET_ONCE, page=rolled.public_id, secret=rolled.secret, rolled=True)
        messages.success(request, "Signing secret rolled.")
    if rolled is not None or form.get("rolled_meanwhile"):
        return redirect("webhooks:detail", public_id=public_id, endpoint_id=endpoint_id)
    context = {"endpoint": endpoint, "project": endpoint.project, **form}
    return render(request, "webhooks/roll_secret.html", context, status=400 if form["error"] else 200)
