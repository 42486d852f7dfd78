from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from apertur.core.mail import stored_messages


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("projects:list")
    return render(request, "core/home.html")


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database answers a query, 503 otherwise."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "not healthy"
        return JsonResponse({"status": "unavailable", "database": type(exc).__name__}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})


@require_safe
def dev_mail(request: HttpRequest) -> HttpResponse:
    """DEBUG only (the route exists only then, see urls.py): the newest messages in var/mail/, with
    clickable links, so a person trying Apertur locally can confirm an email or reset a password."""
    to = request.GET.get("to") or None
    return render(request, "core/dev_mail.html", {"messages_": stored_messages(to=to, limit=50), "to": to})
