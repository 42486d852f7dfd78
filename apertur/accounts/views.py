from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout, update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordResetForm, SetPasswordForm
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import REASON_NO_CSRF_COOKIE
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_safe

from apertur.accounts import login as login_service
from apertur.accounts import services
from apertur.accounts.errors import ConfirmationNeedsLogin
from apertur.accounts.flow import authorize_flow_pages, login_purpose, next_query, safe_next
from apertur.accounts.forms import (
    ChangeEmailForm,
    ChangePasswordForm,
    ConfirmWithPasswordForm,
    EndSessionsForm,
    LoginForm,
    RequestResetForm,
    ResendConfirmationForm,
    ResetPasswordForm,
    SignupForm,
)
from apertur.accounts.models import User, normalize_email
from apertur.core import ratelimit
from apertur.core.errors import AperturError, RateLimited
from apertur.core.http import client_ip, pop_once, rate_limit_ip, show_once
from apertur.referrals.services import COOKIE_NAME as REFERRAL_COOKIE
from apertur.referrals.services import sign_up_customer


def _too_many(request: HttpRequest, template: str, form: Form, exc: RateLimited) -> HttpResponse:
    if not form.is_bound:  # an empty POST (``request.POST or None``): add_error needs a bound form
        form = type(form)(request.POST)
    form.errors.clear()
    form.add_error(None, exc.wait_message())
    response = render(request, template, {"form": form, "next": safe_next(request)}, status=429)
    response["Retry-After"] = str(exc.retry_after)
    return response


@authorize_flow_pages
@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    form = LoginForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            user = login_service.attempt_login(
                request=request,
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password"],
                ip=client_ip(request),
            )
        except RateLimited as exc:
            return _too_many(request, "accounts/login.html", form, exc)
        if user is not None:
            login(request, user)
            return redirect(safe_next(request))
        form.add_error(None, "Incorrect email or password.")
        status = 400
    elif request.method == "POST":
        status = 400
    return render(
        request,
        "accounts/login.html",
        {"form": form, "next": safe_next(request), "purpose": login_purpose(request)},
        status=status,
    )


@authorize_flow_pages
@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def signup_view(request: HttpRequest) -> HttpResponse:
    form = SignupForm(request.POST or None)
    if request.method == "POST":
        try:
            ratelimit.hit(login_service.SIGNUP_PER_IP, rate_limit_ip(client_ip(request)))
        except RateLimited as exc:
            return _too_many(request, "accounts/signup.html", form, exc)
    if request.method == "POST" and form.is_valid():
        try:
            user = sign_up_customer(
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password"],
                referral_cookie=request.COOKIES.get(REFERRAL_COOKIE),
                ip=client_ip(request),
            )
        except AperturError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            login(request, user)
            messages.success(request, f"Welcome to Apertur! We sent a confirmation link to {user.email}.")
            response = redirect(safe_next(request))
            # A click refers one signup: the next account made in this browser is nobody's referral.
            response.delete_cookie(REFERRAL_COOKIE, samesite="Lax")
            return response
    status = 400 if request.method == "POST" else 200
    return render(request, "accounts/signup.html", {"form": form, "next": safe_next(request)}, status=status)


@require_http_methods(["GET", "POST"])
def logout_view(request: HttpRequest) -> HttpResponse:
    """POST logs out (with its CSRF token, so no other site can log a user out). GET (a typed or bookmarked
    /logout) asks first: one button that posts, instead of a bare 405."""
    if request.method == "GET":
        if not request.user.is_authenticated:
            return redirect("/")
        return render(request, "accounts/logout.html")
    was_signed_in = request.user.is_authenticated
    logout(request)
    if was_signed_in:
        messages.info(request, "You are logged out.")
    return redirect("/")


#: The button of the confirmation page for someone who does not know the account's password.
NEW_PASSWORD_STEP = "new-password"


@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])  # not HEAD: a link checker's visit confirms nothing, nor reaches the service
def confirm_email_view(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    """The emailed confirmation link. Opened in the browser signed in to its account (the one that signed up):
    confirmed at once. Anywhere else it asks for the account's password (which confirms and logs in), or leads
    to choosing a new one through the password reset, for an owner of the address who does not know it."""
    link, ip = {"uidb64": uidb64, "token": token}, client_ip(request)
    try:
        if request.method == "POST" and request.POST.get("step") == NEW_PASSWORD_STEP:
            return _new_password_from_confirmation(request, link, ip)
        if request.method == "POST":
            return _confirm_with_password(request, link, ip)
        signed_in = request.user if isinstance(request.user, User) else None
        try:
            confirmed = services.confirm_email(**link, signed_in=signed_in, proof="session", ip=ip)
        except ConfirmationNeedsLogin:
            return _ask_for_password(request, services.confirmation_account(**link), ConfirmWithPasswordForm())
        return _confirmed(request, confirmed)
    except AperturError as exc:
        context = {"error": exc.message, "form": ResendConfirmationForm()}
        return render(request, "accounts/confirm_email.html", context, status=400)


def _new_password_from_confirmation(request: HttpRequest, link: dict[str, str], ip: str) -> HttpResponse:
    """ "Don't know the password?": a way into the password reset, so it counts against the reset's per-IP budget
    (each use writes an audit entry; a script holding a link must not write them without end)."""
    try:
        ratelimit.hit(login_service.RESET_PER_IP, rate_limit_ip(ip))
    except RateLimited as exc:
        form = ConfirmWithPasswordForm(request.POST)
        form.is_valid()
        form.errors.clear()
        form.add_error(None, exc.wait_message())
        response = _ask_for_password(request, services.confirmation_account(**link), form, status=429)
        response["Retry-After"] = str(exc.retry_after)
        return response
    return redirect(services.start_reset_from_confirmation(**link, ip=ip))


def _confirm_with_password(request: HttpRequest, link: dict[str, str], ip: str) -> HttpResponse:
    """The password form of the link's page: checked like a login (its budgets, its audit of failures)."""
    account = services.confirmation_account(**link)
    form = ConfirmWithPasswordForm(request.POST)
    if not form.is_valid():
        return _ask_for_password(request, account, form, status=400)
    try:
        user = login_service.attempt_login(
            request=request, email=account.email, password=form.cleaned_data["password"], ip=ip
        )
    except RateLimited as exc:
        form.add_error(None, exc.wait_message())
        response = _ask_for_password(request, account, form, status=429)
        response["Retry-After"] = str(exc.retry_after)
        return response
    if user is None:
        form.add_error("password", "Incorrect password.")
        return _ask_for_password(request, account, form, status=400)
    confirmed = services.confirm_email(**link, signed_in=user, proof="password", ip=ip)
    login(request, confirmed, backend=getattr(user, "backend", None))  # the one that checked the password
    return _confirmed(request, confirmed, logged_in=True)


def _ask_for_password(request: HttpRequest, account: User, form: Form, *, status: int = 200) -> HttpResponse:
    context = {"error": None, "account_email": account.email, "form": form, "new_password_step": NEW_PASSWORD_STEP}
    return render(request, "accounts/confirm_email.html", context, status=status)


def _confirmed(request: HttpRequest, user: User, *, logged_in: bool = False) -> HttpResponse:
    # The account as saved, not the request's copy loaded before: the banner must not ask to confirm it still.
    context = {"error": None, "user": user, "logged_in": logged_in}
    return render(request, "accounts/confirm_email.html", context)


@require_http_methods(["GET", "POST"])
def resend_confirmation_view(request: HttpRequest) -> HttpResponse:
    """A new confirmation link. Signed in: to the account's own address (the banner's button). Signed out (an
    expired link opened on another device): to an address typed in, answering the same whether or not it has
    an unconfirmed account. Limited per IP and per address like password reset: signup needs no confirmation,
    so without limits anyone could have Apertur mail a victim's address without end."""
    template = "accounts/resend_confirmation.html"
    form = ResendConfirmationForm(request.POST if request.method == "POST" else None)
    user = request.user
    if request.method == "GET":
        return render(request, template, {"form": ResendConfirmationForm(), "next": safe_next(request)})
    try:
        ratelimit.hit(login_service.CONFIRM_RESEND_PER_IP, rate_limit_ip(client_ip(request)))
    except RateLimited as exc:
        return _too_many(request, template, form, exc)
    if isinstance(user, User):
        if not user.email_confirmed:
            try:
                ratelimit.hit(login_service.CONFIRM_RESEND_PER_EMAIL, user.email)
            except RateLimited as exc:
                return _too_many(request, template, form, exc)
            services.send_confirmation_email(user=user)
            messages.success(request, f"We sent a new confirmation link to {user.email}.")
        return redirect(safe_next(request))
    if not form.is_valid():
        return render(request, template, {"form": form, "next": safe_next(request)}, status=400)
    address = normalize_email(form.cleaned_data["email"])
    try:
        ratelimit.hit(login_service.CONFIRM_RESEND_PER_EMAIL, address)
    except RateLimited:
        pass  # the same answer as a sent link: an address's budget must not reveal that it has an account
    else:
        services.request_confirmation_link(email=address)
    return render(request, template, {"sent_to": address})


@method_decorator(authorize_flow_pages, name="dispatch")
class PasswordResetView(auth_views.PasswordResetView):
    """Reached from the login page, also inside the SDK popup: ``next`` goes through to the "check your
    email" page, so neither page severs the popup and both lead back to the login that continues the
    authorization. The emailed link itself opens wherever the mail client opens it."""

    template_name = "accounts/password_reset.html"
    form_class = RequestResetForm
    email_template_name = "emails/password_reset.txt"
    subject_template_name = "emails/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password-reset-done")

    def get_success_url(self) -> str:
        return super().get_success_url() + next_query(self.request)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            ratelimit.hit(login_service.RESET_PER_IP, rate_limit_ip(client_ip(request)))
        except RateLimited as exc:
            return _too_many(request, self.template_name, self.get_form(), exc)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: PasswordResetForm) -> HttpResponse:
        # Links in mail use the configured public address, not whatever Host the request carried.
        self.extra_email_context = {"base_url": settings.APERTUR_BASE_URL}
        try:
            ratelimit.hit(login_service.RESET_PER_EMAIL, normalize_email(form.cleaned_data["email"]))
        except RateLimited:
            # Same page as a sent link: an address's reset budget must not reveal that it has an account.
            return redirect(self.get_success_url())
        return super().form_valid(form)


@method_decorator(authorize_flow_pages, name="dispatch")
class PasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "accounts/password_reset_done.html"


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    form_class = ResetPasswordForm
    success_url = reverse_lazy("accounts:password-reset-complete")

    def form_valid(self, form: SetPasswordForm) -> HttpResponse:
        # The service, not form.save(): it re-checks the link under a row lock, audits, notifies the account
        # and records the proven mailbox.
        try:
            reset = services.reset_password_reporting(
                user=form.user,
                token=self.request.session.get(auth_views.INTERNAL_RESET_SESSION_TOKEN, ""),
                password=form.cleaned_data["new_password1"],
                ip=client_ip(self.request),
            )
        except AperturError:
            self.validlink = False
            return self.render_to_response(self.get_context_data(form=None), status=400)
        del self.request.session[auth_views.INTERNAL_RESET_SESSION_TOKEN]
        if reset.turned_off:
            # Counts and words only (never a secret): the next page tells the owner what the claim turned off.
            show_once(
                self.request,
                CLAIM_TURNED_OFF,
                page=CLAIM_PAGE,
                items=[{"count": item.count, "label": item.label} for item in reset.turned_off],
            )
        return redirect(self.get_success_url())


CLAIM_TURNED_OFF = "accounts.claim_turned_off"
CLAIM_PAGE = "password-reset-complete"


@method_decorator(never_cache, name="dispatch")
class PasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "accounts/password_reset_complete.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        once = pop_once(self.request, CLAIM_TURNED_OFF, page=CLAIM_PAGE)
        context["turned_off"] = once["items"] if once else []
        return context


@authorize_flow_pages
def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """``CSRF_FAILURE_VIEW``: a form posted with a token that no longer matches (most often: a login or logout
    in another tab rotated it, or the page sat open for long) gets a finished page of the site instead of
    Django's bare one, still a 403. It leads back to the page the form was on when that page is ours (the
    Referer, which same-origin requests carry under our ``same-origin`` referrer policy), else home; inside
    the SDK popup it keeps the opener, so the partner's page is not told ``user_denied``."""
    back = request.headers.get("Referer", "")
    if not back or not url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        back = "/"
    context = {"back": back, "no_cookie": reason == REASON_NO_CSRF_COOKIE}
    return render(request, "403_csrf.html", context, status=403)


# --- the account page ----------------------------------------------------------------------------------

# Service errors name the service's field; the account page's forms name theirs.
_ACCOUNT_FIELDS = {"password": "new_password", "email": "new_email"}


def _account_page(request: HttpRequest, *, status: int = 200, **bound: Form) -> HttpResponse:
    context = {
        "email_form": ChangeEmailForm(prefix="email"),
        "password_form": ChangePasswordForm(prefix="password"),
        "sessions_form": EndSessionsForm(prefix="sessions"),
        **bound,
    }
    return render(request, "accounts/account.html", context, status=status)


def _account_error(request: HttpRequest, name: str, form: Form, exc: AperturError) -> HttpResponse:
    """The page again with the error on the form that caused it; past a budget, 429 with Retry-After."""
    if isinstance(exc, RateLimited):  # a budget that names its attempts says so (ratelimit.hit's ``what``)
        form.add_error(None, exc.wait_message())
    else:
        field = _ACCOUNT_FIELDS.get(exc.field or "", exc.field)
        form.add_error(field if field in form.fields else None, exc.message)
    response = _account_page(request, status=exc.status, **{name: form})
    if isinstance(exc, RateLimited):
        response["Retry-After"] = str(exc.retry_after)
    return response


@login_required
@require_safe
def account_view(request: HttpRequest) -> HttpResponse:
    return _account_page(request)


def _signed_in_user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)
    return user


@login_required
@sensitive_post_parameters("password-current_password", "password-new_password", "password-new_password_again")
@require_http_methods(["GET", "POST"])
def change_password_view(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":  # a reload after an error: the page, not a 405
        return redirect("accounts:account")
    form = ChangePasswordForm(request.POST, prefix="password")
    if not form.is_valid():
        return _account_page(request, status=400, password_form=form)
    try:
        user = services.change_password(
            user=_signed_in_user(request),
            current_password=form.cleaned_data["current_password"],
            new_password=form.cleaned_data["new_password"],
            ip=client_ip(request),
        )
    except AperturError as exc:
        return _account_error(request, "password_form", form, exc)
    update_session_auth_hash(request, user)  # this session stays; every other one of the user ends
    messages.success(request, "Your password was changed. Your other sessions were logged out.")
    return redirect("accounts:account")


@login_required
@sensitive_post_parameters("email-current_password")
@require_http_methods(["GET", "POST"])
def change_email_view(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return redirect("accounts:account")
    form = ChangeEmailForm(request.POST, prefix="email")
    if not form.is_valid():
        return _account_page(request, status=400, email_form=form)
    try:
        address = services.request_email_change(
            user=_signed_in_user(request),
            new_email=form.cleaned_data["new_email"],
            current_password=form.cleaned_data["current_password"],
            ip=client_ip(request),
        )
    except AperturError as exc:
        return _account_error(request, "email_form", form, exc)
    messages.success(
        request,
        f"We sent a link to {address}. Your email address changes when you open it (it works for 3 days).",
    )
    return redirect("accounts:account")


@login_required
@require_GET  # not HEAD: opening the link changes the address, and a HEAD (a link checker) is no visit
def confirm_email_change_view(request: HttpRequest, token: str) -> HttpResponse:
    """The link sent to the new address. Opened while signed out, it passes through the login and comes back."""
    try:
        user = services.confirm_email_change(user=_signed_in_user(request), token=token, ip=client_ip(request))
    except AperturError as exc:
        return render(request, "accounts/email_change_invalid.html", {"error": exc.message}, status=exc.status)
    messages.success(request, f"Your email address is now {user.email}.")
    return redirect("accounts:account")


@login_required
@sensitive_post_parameters("sessions-current_password")
@require_http_methods(["GET", "POST"])
def end_other_sessions_view(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return redirect("accounts:account")
    form = EndSessionsForm(request.POST, prefix="sessions")
    if not form.is_valid():
        return _account_page(request, status=400, sessions_form=form)
    try:
        user = services.end_other_sessions(
            user=_signed_in_user(request),
            current_password=form.cleaned_data["current_password"],
            ip=client_ip(request),
        )
    except AperturError as exc:
        return _account_error(request, "sessions_form", form, exc)
    update_session_auth_hash(request, user)
    messages.success(request, "Your other sessions were logged out.")
    return redirect("accounts:account")
