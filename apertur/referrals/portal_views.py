"""Partner portal page for referral links. Thin: parse, call one service or selector, render."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from apertur.core.errors import AperturError
from apertur.core.forms import add_problems
from apertur.core.pages import PAGE_SIZE, page_of
from apertur.partners.decorators import approved_partner_required
from apertur.partners.models import Partner
from apertur.referrals import selectors, services
from apertur.referrals.forms import LinkForm


@approved_partner_required
@require_http_methods(["GET", "POST"])
def link_list(request: HttpRequest, partner: Partner) -> HttpResponse:
    form = LinkForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                link = services.create_link(partner=partner, label=form.cleaned_data["label"])
            except AperturError as exc:
                add_problems(form, exc)
            else:
                messages.success(request, f"Referral link created: {link.url}")
                return redirect("partners:referrals")
        status = 400
    page = page_of(selectors.link_list(partner=partner), page=request.GET.get("page"), size=PAGE_SIZE, rows=list)
    return render(
        request,
        "referrals/links.html",
        {"partner": partner, "links": page.rows, "page": page, "form": form, "section": "referrals"},
        status=status,
    )
