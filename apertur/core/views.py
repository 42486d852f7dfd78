from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from apertur.core import health
from apertur.core.mail import stored_messages

STAFF_ONLY = "These pages are for Apertur staff. Your account does not have access to them."


def is_staff(user: object) -> bool:
    return bool(getattr(user, "is_active", False) and getattr(user, "is_staff", False))


def staff_only(request: HttpRequest) -> HttpResponse:
    """The site's 403 page for a signed-in account that is not staff, on a staff page."""
    return render(request, "403.html", {"message": STAFF_ONLY}, status=403)


def admin_login(request: HttpRequest) -> HttpResponse:
    """``/admin/login/``, where the admin sends whoever it refuses. A signed-in customer or partner gets the
    site's 403 page: Django's own answer was the admin's login form ("log in to a different account?"), asking
    for a password they have no reason to type there. Signed out or staff: the admin's login; one refused past a
    failed-login budget answers 429 with ``Retry-After``, as ``/login`` does (the form alone showed it with a 200)."""
    from django.contrib import admin

    if request.user.is_authenticated and not is_staff(request.user):
        return staff_only(request)
    response = admin.site.login(request)
    form = (getattr(response, "context_data", None) or {}).get("form")
    limited = getattr(form, "rate_limited", None)
    if limited is not None:
        response.status_code = 429
        response["Retry-After"] = str(limited.retry_after)
    return response


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("projects:list")
    return render(request, "core/home.html")


@require_safe
def favicon(request: HttpRequest) -> HttpResponse:
    """``/favicon.ico``, which a browser asks for on pages without our ``<link rel="icon">`` (the admin's, the API
    reference's): the site's icon, instead of a 404 in the console of each of them."""
    return redirect(static("favicon.svg"), permanent=True)


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database answers a query, 503 otherwise (ARCHITECTURE section 6: monitors read this JSON)."""
    found = health.check()
    return JsonResponse(found.as_json(), status=found.http_status)


@never_cache
@require_safe
def status(request: HttpRequest) -> HttpResponse:
    """The footer's Status link: ``/healthz``'s answer as a page for people, with the same status code.

    Its template reads nothing from the database (no user, no flash messages), so it renders while the
    database it reports on is down."""
    found = health.check()
    return render(request, "core/status.html", {"health": found}, status=found.http_status)


@require_safe
def dev_mail(request: HttpRequest) -> HttpResponse:
    """DEBUG only (the route exists only then, see urls.py): the newest messages in var/mail/, with
    clickable links, so a person trying Apertur locally can confirm an email or reset a password."""
    to = request.GET.get("to") or None
    return render(request, "core/dev_mail.html", {"messages_": stored_messages(to=to, limit=50), "to": to})


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """``handler404``: Django's own view gives the template the exception's text as ``exception``, which for an
    unmatched URL is the resolver's class name. Our views raise ``Http404("No such project.")`` meaning the
    message for the visitor: show those, and the generic text for everything else (an unmatched URL, or
    ``get_object_or_404``'s "No <model> matches the given query.", which names our models)."""
    message = None
    if type(exception) is Http404 and exception.args and isinstance(exception.args[0], str):
        text = exception.args[0]
        message = None if text.endswith("matches the given query.") else text
    return render(request, "404.html", {"message": message}, status=404)
