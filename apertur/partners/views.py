from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from apertur.accounts.models import User
from apertur.commissions.selectors import balance
from apertur.core.errors import AperturError, RateLimited
from apertur.core.forms import add_problems
from apertur.core.http import client_ip
from apertur.oauth.selectors import app_count
from apertur.partners import paypal, selectors, services
from apertur.partners.decorators import (
    approved_partner_required,
    current_partner,
    may_review,
    reviewer_required,
    staff_required,
)
from apertur.partners.forms import ApplicationForm, ReasonForm
from apertur.partners.models import Partner, PartnerStatus
from apertur.payouts import selectors as payout_selectors
from apertur.payouts import services as payout_services


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


@login_required
@require_http_methods(["GET", "POST"])
def partner_home(request: HttpRequest) -> HttpResponse:
    """The partner section: the application form, its status, or the portal once approved."""
    partner = current_partner(request)
    if partner is not None and partner.is_approved:
        context = {
            "partner": partner,
            "app_count": app_count(partner=partner),
            "balance": balance(partner=partner),
            "section": "overview",
        }
        # What payouts wait for (or when the next run is): the next step, without opening Payouts.
        context["outlook"] = payout_selectors.payout_status(partner=partner)
        return render(request, "partners/portal.html", context)
    can_apply = partner is None or partner.status == PartnerStatus.REJECTED
    initial = {}
    if partner is not None:
        initial = {k: getattr(partner, k) for k in ("company_name", "website", "use_case", "expected_customers")}
    form = ApplicationForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        if not can_apply:
            messages.error(request, "You have already applied.")
            return redirect("partners:home")
        if form.is_valid():
            try:
                services.apply(user=_user(request), ip=client_ip(request), **form.cleaned_data)
            except AperturError as exc:
                add_problems(form, exc)
            else:
                messages.success(request, "Application sent. We usually answer within 2 business days.")
                return redirect("partners:home")
        status = 400
    return render(
        request,
        "partners/apply.html",
        {"partner": partner, "form": form, "can_apply": can_apply},
        status=status,
    )


@approved_partner_required
@require_http_methods(["GET", "POST"])
def payouts(request: HttpRequest, partner: Partner) -> HttpResponse:
    """The PayPal address payouts go to, and its confirmation."""
    error = None
    status = 200
    retry_after: int | None = None
    if request.method == "POST":
        try:
            partner = paypal.request_change(
                partner=partner, email=request.POST.get("paypal_email", ""), actor=_user(request), ip=client_ip(request)
            )
        except RateLimited as exc:
            error = exc.wait_message("confirmation links")
            status, retry_after = 429, exc.retry_after
        except AperturError as exc:
            error, status = exc.message, 400
        else:
            messages.success(
                request,
                f"We sent a confirmation link to {partner.paypal_pending_email}. Payouts go there once it is opened.",
            )
            return redirect("partners:payouts")
    context = {"partner": partner, "section": "payouts", "error": error, "value": request.POST.get("paypal_email", "")}
    context["history"] = payout_selectors.payout_list(partner=partner, page=request.GET.get("page"))
    context["outlook"] = payout_selectors.payout_status(partner=partner)
    # Also under a staff hold, whose status card says only that: the address is not where payouts go.
    context["refused_email"] = payout_services.refused_address(partner)
    response = render(request, "partners/payouts.html", context, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def paypal_confirm(request: HttpRequest, token: str) -> HttpResponse:
    """The link from the confirmation email. The token is the credential: it may be opened anywhere. Opened by
    the partner it belongs to, signed in, it confirms at once; anyone else (a mail scanner prefetching links,
    the owner of a mistyped address) gets a button, so a link is never confirmed just by being fetched."""
    owner = None if request.method == "POST" else paypal.link_owner_id(token=token)
    if request.method == "POST" or owner is None or owner == request.user.pk:
        # A link that does not work (used, expired, unknown) says so at once; confirm() raises it.
        try:
            partner = paypal.confirm(token=token, ip=client_ip(request))
        except AperturError as exc:
            return render(request, "partners/paypal_confirm.html", {"error": exc.message}, status=400)
        return render(request, "partners/paypal_confirm.html", {"done": partner.paypal_email})
    return render(request, "partners/paypal_confirm.html", {"token": token})


# --- staff review ------------------------------------------------------------------------------------


@staff_required
def staff_list(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", PartnerStatus.PENDING)
    if status not in PartnerStatus.values and status != "all":
        status = PartnerStatus.PENDING
    page = selectors.partner_page(status=None if status == "all" else status, page=request.GET.get("page"))
    return render(
        request,
        "partners/staff_list.html",
        {"page": page, "status": status, "statuses": PartnerStatus.choices},
    )


@staff_required
def staff_detail(request: HttpRequest, partner_id: int) -> HttpResponse:
    partner = get_object_or_404(Partner.objects.select_related("user", "reviewed_by"), pk=partner_id)
    return render(request, "partners/staff_detail.html", _staff_context(request, partner))


def _staff_context(
    request: HttpRequest, partner: Partner, *, form: ReasonForm | None = None, hold_form: ReasonForm | None = None
) -> dict[str, object]:
    """The review page: the decision form and the payout hold form each post a ``reason`` of their own; staff who
    may only look (:func:`may_review`) get the facts without the forms."""
    return {
        "partner": partner,
        "form": form or ReasonForm(),
        "hold_form": hold_form or _hold_form(),
        "may_review": may_review(request.user),
    }


#: Actions that ask for confirmation first (what they do, the confirm button), and the words the page shows for
#: the reason. The first POST, from the review page, only shows what will happen; the confirmation page posts the
#: same reason again with ``confirmed``, and only that acts. Approve, Restore and Release are undone as easily.
_CONFIRM: dict[str, tuple[str, str, str]] = {
    "reject": (
        "Reject {company}?",
        "The application is refused and the applicant is emailed this reason. They can update the application "
        "and apply again.",
        "Reject application",
    ),
    "suspend": (
        "Suspend {company}?",
        "This disables all their OAuth apps at once (credentials, public keys and tokens stop working, and their "
        "users cannot connect) and emails them this reason. Restore undoes it.",
        "Suspend partner",
    ),
    "hold": (
        "Hold payouts to {company}?",
        "No monthly run or staff retry pays them until you release the hold; commissions keep accumulating. The "
        "partner is not emailed but sees this note on their Payouts page; the audit log keeps it.",
        "Hold payouts",
    ),
}
_PAST = {"approve": "approved", "reject": "rejected", "suspend": "suspended", "restore": "restored"}


def _confirmed(request: HttpRequest) -> bool:
    return request.POST.get("confirmed") == "yes"


def _confirm_page(request: HttpRequest, partner: Partner, action: str, *, reason: str, label: str) -> HttpResponse:
    title, warning, button = _CONFIRM[action]
    context = {
        "partner": partner,
        "action": action,
        "title": title.format(company=partner.company_name),
        "warning": warning,
        "button": button,
        "reason": reason,
        "reason_label": label,
    }
    return render(request, "partners/staff_confirm.html", context)


@reviewer_required
@require_POST
def staff_review(request: HttpRequest, partner_id: int, action: str) -> HttpResponse:
    partner = get_object_or_404(Partner.objects.select_related("user", "reviewed_by"), pk=partner_id)
    if action in ("hold", "release"):
        return _staff_payout_hold(request, partner, action)
    if action not in _PAST:
        raise Http404("Unknown action.")
    form = ReasonForm(request.POST)
    form.is_valid()
    reason = form.cleaned_data.get("reason", "")
    reviewer, ip = _user(request), client_ip(request)
    try:
        if action in _CONFIRM and not _confirmed(request):
            services.check_review(partner=partner, action=action, reason=reason)
            return _confirm_page(
                request, partner, action, reason=reason.strip(), label=str(form.fields["reason"].label)
            )
        if action == "approve":
            services.approve(partner=partner, reviewer=reviewer, ip=ip)
        elif action == "reject":
            services.reject(partner=partner, reviewer=reviewer, reason=reason, ip=ip)
        elif action == "suspend":
            services.suspend(partner=partner, reviewer=reviewer, reason=reason, ip=ip)
        else:
            services.restore(partner=partner, reviewer=reviewer, ip=ip)
    except AperturError as exc:
        form.add_error("reason" if exc.field == "reason" else None, exc.message)
        partner.refresh_from_db()
        return render(request, "partners/staff_detail.html", _staff_context(request, partner, form=form), status=400)
    messages.success(request, f"{partner.company_name} {_PAST[action]}. The partner has been emailed.")
    return redirect("partners:staff-detail", partner_id=partner.pk)


def _hold_form(request: HttpRequest | None = None) -> ReasonForm:
    form = ReasonForm(request.POST if request else None, auto_id="id_hold_%s")
    form.fields["reason"].label = "Why hold payouts"
    return form


def _staff_payout_hold(request: HttpRequest, partner: Partner, action: str) -> HttpResponse:
    """Hold (with a required reason, once confirmed) or release the partner's payouts; the service audits both."""
    hold_form = _hold_form(request)
    hold_form.is_valid()
    reason = hold_form.cleaned_data.get("reason", "")
    try:
        if action == "hold" and not _confirmed(request):
            payout_services.check_hold(reason=reason)
            return _confirm_page(
                request, partner, action, reason=reason.strip(), label=str(hold_form.fields["reason"].label)
            )
        if action == "hold":
            payout_services.hold_partner(partner=partner, actor=_user(request), reason=reason, ip=client_ip(request))
        else:
            payout_services.release_partner(partner=partner, actor=_user(request), ip=client_ip(request))
    except AperturError as exc:
        hold_form.add_error("reason" if exc.field == "reason" else None, exc.message)
        partner.refresh_from_db()
        context = _staff_context(request, partner, hold_form=hold_form)
        return render(request, "partners/staff_detail.html", context, status=400)
    if action == "hold":
        messages.success(
            request, f"Payouts to {partner.company_name} are held: no run or retry pays them until released."
        )
    else:
        messages.success(request, f"Payouts to {partner.company_name} are released: the next monthly run pays them.")
    return redirect("partners:staff-detail", partner_id=partner.pk)
