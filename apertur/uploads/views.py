"""The public upload page guests use (``/u/<token>``) and the owner's pages for sessions and uploads."""

from __future__ import annotations

import datetime as dt
import logging
import mimetypes

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST, require_safe

from apertur.accounts.models import User
from apertur.core import clock, ratelimit
from apertur.core.errors import AperturError, RateLimited
from apertur.core.http import client_ip, pop_once, rate_limit_ip, show_once
from apertur.core.pages import PAGE_SIZE, page_of
from apertur.core.rolling import roll_secret_form
from apertur.projects.http import owned_project
from apertur.projects.selectors import project_for_owner
from apertur.uploads import destinations, selectors, services
from apertur.uploads.errors import InvalidSession, SessionNotFound
from apertur.uploads.models import (
    IMAGE_EXTENSIONS,
    Destination,
    DestinationKind,
    DestinationStatus,
    Upload,
    UploadSession,
)

logger = logging.getLogger(__name__)

GUEST_UPLOADS_PER_IP = ratelimit.Limit("guest-upload-ip", 600, 60 * 60)


def _unlocked_key(session: UploadSession) -> str:
    return f"upload-unlocked:{session.token}"


def _still_locked(request: HttpRequest, session: UploadSession) -> bool:
    """A password-protected link whose password this browser has not given yet."""
    return session.has_password and not request.session.get(_unlocked_key(session))


def _spend_guest_upload(request: HttpRequest) -> None:
    """One hit of the guest upload budget of the client's network (:func:`rate_limit_ip`)."""
    ratelimit.hit(GUEST_UPLOADS_PER_IP, rate_limit_ip(client_ip(request)))


def _guest_session(token: str) -> UploadSession:
    session = selectors.session_by_token(token)
    if session is None:
        raise Http404("This upload link does not exist.")
    return session


@never_cache  # its address is the link's secret, its content the link's state (open, full, closed)
@require_safe
def public_page(request: HttpRequest, token: str) -> HttpResponse:
    session = _guest_session(token)
    locked = _still_locked(request, session)
    # A link no longer accepting says which happened, and when: its expiry passed (closed since, or closed by hand
    # after it), or its owner closed it first.
    closed_at = session.effective_closed_at
    context = {
        "session": session,
        "locked": locked,
        "accepting": session.is_accepting(),
        "closed_at": closed_at,
        "expired": bool(closed_at and session.expires_at and closed_at >= session.expires_at),
        # A link with all its files: said on the page rather than refusing each photo the guest then chooses.
        "full": session.max_files is not None and session.uploads.count() >= session.max_files,
        "max_mb": session.project.plan.max_file_bytes // 1_048_576,
        "accept": ",".join(session.accepted_types),
        # A refusal flashed (base.html's "messages-error") is about the form's one field: the password while locked
        # (public_unlock), else the photos (the form without JavaScript: public_file). Not read on a HEAD, which must
        # leave the flash messages to the next GET (base.html).
        "refused": request.method != "HEAD" and any(m.level == messages.ERROR for m in messages.get_messages(request)),
    }
    return render(request, "uploads/public.html", context)


@require_POST
def public_unlock(request: HttpRequest, token: str) -> HttpResponse:
    session = _guest_session(token)
    try:
        _spend_guest_upload(request)
        services.check_session_password(
            session=session, password=request.POST.get("password", ""), ip=client_ip(request)
        )
    except AperturError as exc:
        messages.error(request, exc.message)
    else:
        request.session[_unlocked_key(session)] = True
    return redirect("uploads:public", token=token)


def _public_files_form(request: HttpRequest, session: UploadSession) -> HttpResponse:
    """The upload form posted by a browser without JavaScript: every chosen file, then the page again with what
    became of each (not the JSON meant for the page's script, and not only one of the files)."""
    if _still_locked(request, session):
        messages.error(request, "Enter the password first.")
        return redirect("uploads:public", token=session.token)
    files = request.FILES.getlist("file")
    if not files:
        messages.error(request, "Choose a file.")
    stored = 0
    for index, uploaded in enumerate(files):
        try:
            _spend_guest_upload(request)
            services.accept_upload(
                session=session, file=uploaded, note=request.POST.get("note", ""), ip=client_ip(request)
            )
        except RateLimited as exc:  # the rest would be refused too: once, with when to try again
            left = len(files) - index
            messages.error(request, f"{exc.message} {left} photo{'s' if left != 1 else ''} not uploaded.")
            break
        except AperturError as exc:
            name = uploaded.name or "A file"
            messages.error(request, exc.message if name in exc.message else f"{name}: {exc.message}")
        else:
            stored += 1
    if stored:
        messages.success(request, f"{stored} photo{'s' if stored != 1 else ''} uploaded. Thank you!")
    return redirect("uploads:public", token=session.token)


@require_POST
def public_file(request: HttpRequest, token: str) -> HttpResponse:
    """One file per request (the page sends several in parallel, each with its own progress bar); without
    JavaScript the browser posts the form itself, with every file (_public_files_form)."""
    session = _guest_session(token)
    if "text/html" in request.headers.get("Accept", ""):
        return _public_files_form(request, session)
    if _still_locked(request, session):
        return JsonResponse({"error": {"code": "wrong_password", "message": "Enter the password first."}}, status=403)
    uploaded = request.FILES.get("file")
    if uploaded is None:
        return JsonResponse({"error": {"code": "validation_error", "message": "Choose a file."}}, status=422)
    try:
        _spend_guest_upload(request)
        upload = services.accept_upload(
            session=session, file=uploaded, note=request.POST.get("note", ""), ip=client_ip(request)
        )
    except RateLimited as exc:
        response = JsonResponse({"error": exc.as_dict()}, status=429)
        response["Retry-After"] = str(exc.retry_after)
        return response
    except AperturError as exc:
        return JsonResponse({"error": exc.as_dict()}, status=exc.status)
    return JsonResponse({"id": upload.public_id, "name": upload.original_name, "size": upload.size}, status=201)


# --- owner pages ---------------------------------------------------------------------------------------


def _owner(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


# The session key of a refused upload link's form, shown again once by its project's page (pop_upload_link_draft).
UPLOAD_LINK_DRAFT = "upload_link_draft"


def pop_upload_link_draft(request: HttpRequest, project_public_id: str) -> dict[str, str] | None:
    return pop_once(request, UPLOAD_LINK_DRAFT, page=project_public_id)


@login_required
@require_POST
def session_create(request: HttpRequest, public_id: str) -> HttpResponse:
    project = owned_project(request, public_id)
    expires_at = None
    days = request.POST.get("expires_in_days", "").strip()
    try:
        if days:
            # ASCII digits only: str.isdigit() is also true for "²", which int() refuses (a 500).
            if not (days.isascii() and days.isdigit()) or not 1 <= int(days) <= 3650:
                raise InvalidSession("Expiry is a number of days from 1 to 3,650.", field="expires_at")
            expires_at = clock.now() + dt.timedelta(days=int(days))
        max_files = request.POST.get("max_files", "").strip()
        if max_files and not (max_files.isascii() and max_files.isdigit()):
            raise InvalidSession("Max files is a whole number.", field="max_files")
        session = services.create_session(
            project=project,
            title=request.POST.get("title", ""),
            expires_at=expires_at,
            max_files=int(max_files) if max_files else None,
            password=request.POST.get("password") or None,
            actor=_owner(request),
            ip=client_ip(request),
        )
    except AperturError as exc:
        # The form is on the project page: it comes back filled in (not the password), the reason beside it.
        show_once(
            request,
            UPLOAD_LINK_DRAFT,
            page=project.public_id,
            title=request.POST.get("title", ""),
            expires_in_days=days,
            max_files=request.POST.get("max_files", ""),
            error=exc.message,
            field=exc.field,
        )
        return redirect(reverse("projects:detail", args=[public_id]) + "#upload-links")
    messages.success(request, f"Upload link “{session.title}” created.")
    return redirect("uploads:session", public_id=public_id, session_id=session.public_id)


def _owned_session(request: HttpRequest, public_id: str, session_id: str) -> UploadSession:
    project = project_for_owner(owner=_owner(request), public_id=public_id)
    session = selectors.session_for_project(project=project, public_id=session_id) if project else None
    if session is None:
        raise Http404("No such upload session.")
    return session


@login_required
@require_safe
def session_detail(request: HttpRequest, public_id: str, session_id: str) -> HttpResponse:
    session = _owned_session(request, public_id, session_id)
    uploads = page_of(
        selectors.upload_list(project=session.project, session=session),
        page=request.GET.get("page"),
        size=PAGE_SIZE,
        rows=list,
        count=session.upload_count,  # type: ignore[attr-defined]  # annotated by session_for_project
    )
    return render(request, "uploads/session.html", {"session": session, "uploads": uploads, "link": session.url})


@login_required
@require_http_methods(["GET", "POST"])
def session_close(request: HttpRequest, public_id: str, session_id: str) -> HttpResponse:
    session = _owned_session(request, public_id, session_id)
    if request.method == "POST":
        try:
            services.close_session(session=session, actor=_owner(request), ip=client_ip(request))
        except SessionNotFound:  # deleted meanwhile, with its project (staff): nothing is left to close
            messages.info(request, f"This upload link no longer exists: “{session.title}” was deleted.")
            return redirect("projects:list")
        messages.success(request, f"“{session.title}” is closed: guests can no longer upload.")
        return redirect("uploads:session", public_id=public_id, session_id=session_id)
    if not session.is_accepting():  # already closed or expired: nothing to confirm
        messages.info(request, f"“{session.title}” is already closed.")
        return redirect("uploads:session", public_id=public_id, session_id=session_id)
    return render(request, "uploads/close.html", {"session": session})


@login_required
@require_safe
def upload_download(request: HttpRequest, upload_id: str) -> FileResponse:
    upload = (
        Upload.objects.select_related("project").filter(public_id=upload_id, project__owner=_owner(request)).first()
    )
    if upload is None:
        raise Http404("No such upload.")
    try:
        stored = upload.file.open("rb")
    except FileNotFoundError as exc:
        # Storage switched without its files, a database restored without them: the owner gets a page saying so.
        logger.warning("upload %s: its file %s is not in storage", upload.public_id, upload.file.name)
        raise Http404("The file of this upload is no longer in storage.") from exc
    # The type the upload was checked as, never one guessed from the guest's file name (a JPEG named page.html
    # is served as image/jpeg, and its name gets the type's extension).
    return FileResponse(
        stored,
        as_attachment=True,
        filename=download_name(upload.original_name, upload.content_type),
        content_type=upload.content_type or "application/octet-stream",
    )


def download_name(original: str, content_type: str) -> str:
    extension = IMAGE_EXTENSIONS.get(content_type)
    if not extension or original.lower().endswith((extension, *mimetypes.guess_all_extensions(content_type))):
        return original
    return original + extension


# --- destinations ---------------------------------------------------------------------------------------

# A new HTTPS destination's signing secret is shown on the next page once, like webhook secrets and API keys.
_SECRET_ONCE = "destination_secret_once"


@login_required
@require_http_methods(["GET", "POST"])
def destination_new(request: HttpRequest, public_id: str) -> HttpResponse:
    project = owned_project(request, public_id)
    kind = request.GET.get("kind") or request.POST.get("kind") or "https"
    error = error_field = None
    if request.method == "POST":
        data = request.POST
        try:
            if kind == "s3":
                destination = destinations.create_s3_destination(
                    project=project,
                    name=data.get("name", ""),
                    bucket=data.get("bucket", ""),
                    region=data.get("region", ""),
                    endpoint_url=data.get("endpoint_url", ""),
                    prefix=data.get("prefix", ""),
                    access_key_id=data.get("access_key_id", ""),
                    secret_access_key=data.get("secret_access_key", ""),
                    actor=_owner(request),
                    ip=client_ip(request),
                )
            else:
                destination = destinations.create_https_destination(
                    project=project,
                    name=data.get("name", ""),
                    url=data.get("url", ""),
                    actor=_owner(request),
                    ip=client_ip(request),
                )
                show_once(request, _SECRET_ONCE, page=destination.public_id, secret=destination.secret)
        except AperturError as exc:
            error, error_field = exc.message, exc.field
        else:
            messages.success(request, "Destination added: new uploads are copied there.")
            return redirect("uploads:destination", public_id=public_id, destination_id=destination.public_id)
    context = {
        "project": project,
        "kind": "s3" if kind == "s3" else "https",
        "error": error,
        "error_field": error_field,
        "form": request.POST,
    }
    return render(request, "uploads/destination_new.html", context, status=400 if error else 200)


def _destination(request: HttpRequest, public_id: str, destination_id: str) -> Destination:
    destination = (
        Destination.objects.select_related("project")
        .filter(public_id=destination_id, project__public_id=public_id, project__owner=_owner(request))
        .first()
    )
    if destination is None:
        raise Http404("No such destination.")
    return destination


@never_cache  # it shows the signing secret once: Back must not bring it back from the browser's cache
@login_required
@require_GET
def destination_detail(request: HttpRequest, public_id: str, destination_id: str) -> HttpResponse:
    destination = _destination(request, public_id, destination_id)
    once = pop_once(request, _SECRET_ONCE, page=destination.public_id)
    deliveries = page_of(
        selectors.destination_deliveries(destination=destination),
        page=request.GET.get("page"),
        size=PAGE_SIZE,
        rows=list,
    )
    context = {
        "destination": destination,
        "project": destination.project,
        "deliveries": deliveries,
        "secret": once["secret"] if once else None,
        "rolled": bool(once and once.get("rolled")),
        "previous_secret_until": destination.previous_secret_valid_until(clock.now()),
    }
    return render(request, "uploads/destination_detail.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def destination_roll_secret(request: HttpRequest, public_id: str, destination_id: str) -> HttpResponse:
    destination = _destination(request, public_id, destination_id)
    if destination.kind != DestinationKind.HTTPS:
        raise Http404("Only an HTTPS destination has a signing secret.")
    rolled, form = roll_secret_form(
        request,
        row=destination,
        current=destination.secret,
        rotate=lambda overlap, replacing: destinations.rotate_secret(
            destination=destination,
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
        return redirect("uploads:destination", public_id=public_id, destination_id=destination_id)
    context = {"destination": destination, "project": destination.project, **form}
    return render(request, "uploads/destination_roll_secret.html", context, status=400 if form["error"] else 200)


@login_required
@require_http_methods(["GET", "POST"])
def destination_credentials(request: HttpRequest, public_id: str, destination_id: str) -> HttpResponse:
    destination = _destination(request, public_id, destination_id)
    if destination.kind != DestinationKind.S3:
        raise Http404("Only an S3 destination has an access key.")
    error = error_field = None
    if request.method == "POST":
        try:
            destinations.replace_s3_credentials(
                destination=destination,
                access_key_id=request.POST.get("access_key_id", ""),
                secret_access_key=request.POST.get("secret_access_key", ""),
                actor=_owner(request),
                ip=client_ip(request),
            )
        except AperturError as exc:
            error, error_field = exc.message, exc.field
        else:
            messages.success(request, "Access key replaced: the next copies use it.")
            return redirect("uploads:destination", public_id=public_id, destination_id=destination_id)
    context = {
        "destination": destination,
        "project": destination.project,
        "error": error,
        "error_field": error_field,
        "form": request.POST,
    }
    return render(request, "uploads/destination_credentials.html", context, status=400 if error else 200)


@login_required
@require_http_methods(["GET", "POST"])
def destination_switch(request: HttpRequest, public_id: str, destination_id: str, on: bool) -> HttpResponse:
    """Disable or enable a destination (``on`` comes from the URL), after a page that says where copies go."""
    destination = _destination(request, public_id, destination_id)
    if (destination.status != DestinationStatus.DISABLED) == on:  # already so: nothing to confirm
        return redirect("uploads:destination", public_id=public_id, destination_id=destination_id)
    if request.method == "POST":
        switch = destinations.enable_destination if on else destinations.disable_destination
        try:
            switch(destination=destination, actor=_owner(request), ip=client_ip(request))
        except RateLimited as exc:  # enabling is counted (disabling never is)
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Destination “{destination.name}” {'enabled' if on else 'disabled'}.")
        return redirect("uploads:destination", public_id=public_id, destination_id=destination_id)
    context = {"destination": destination, "project": destination.project, "on": on}
    return render(request, "uploads/destination_switch.html", context)


@login_required
@require_http_methods(["GET", "POST"])
def destination_delete(request: HttpRequest, public_id: str, destination_id: str) -> HttpResponse:
    if request.method == "POST" and not Destination.objects.filter(public_id=destination_id).exists():
        owned_project(request, public_id)  # someone else's project stays a 404
        # Removed already (a double click, another tab): what this form asked for is done; say so.
        messages.info(request, "This destination no longer exists: it was removed.")
        return redirect("projects:detail", public_id=public_id)
    destination = _destination(request, public_id, destination_id)
    if request.method == "POST":
        destinations.delete_destination(destination=destination, actor=_owner(request), ip=client_ip(request))
        messages.success(request, f"Destination “{destination.name}” removed.")
        return redirect("projects:detail", public_id=public_id)
    return render(request, "uploads/destination_delete.html", {"destination": destination})
