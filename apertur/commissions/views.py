"""The partner's commissions dashboard and its CSV export. Thin: parse the filters, call the selectors,
render. The CSV holds exactly the rows the same filters show, every page of them."""

from __future__ import annotations

import itertools

from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from apertur.commissions import payability, selectors
from apertur.commissions.charts import bar_chart
from apertur.commissions.forms import EarningFilterForm
from apertur.core import clock
from apertur.core.spreadsheet import cell, csv_download
from apertur.partners.decorators import approved_partner_required
from apertur.partners.models import Partner

CSV_HEADER = [
    "date",
    "customer",
    "project",
    "payment_cad_cents",
    "commission_cents",
    "net_cents",
    "status",
    "available_at",
]


@never_cache
@approved_partner_required
@require_safe
def dashboard(request: HttpRequest, partner: Partner) -> HttpResponse:
    now = clock.now()
    form = EarningFilterForm(request.GET, customers=selectors.customer_choices(partner=partner))
    valid = form.is_valid()
    page = selectors.earning_page(partner=partner, filters=form.filters(), page=request.GET.get("page"), at=now)
    series = selectors.monthly_earnings(partner=partner, at=now)
    balance, payout = selectors.balance_and_next_payout(partner=partner, at=now)
    context = {
        "partner": partner,
        "section": "commissions",
        "balance": balance,
        "funnel": selectors.referral_funnel(partner=partner),
        "apps": selectors.connected_projects(partner=partner),
        "payout": payout,
        "not_paid": payability.why_not_paid(partner=partner),
        "series": series,
        "chart": bar_chart(series),
        "form": form,
        "page": page,
    }
    return render(request, "commissions/dashboard.html", context, status=200 if valid else 400)


@never_cache
@approved_partner_required
@require_safe
def earnings_csv(request: HttpRequest, partner: Partner) -> HttpResponseBase:
    form = EarningFilterForm(request.GET)
    if not form.is_valid():
        problems = "; ".join(f"{name}: {' '.join(str(e) for e in errors)}" for name, errors in form.errors.items())
        return HttpResponse(f"Fix the filters first. {problems}", status=400, content_type="text/plain")
    now = clock.now()
    entries = selectors.earning_list(partner=partner, filters=form.filters(), at=now)
    rows = (
        [
            row.date.isoformat(),
            cell(row.customer),
            cell(row.project),
            row.payment_cad_cents,
            row.commission_cents,
            row.net_cents,
            row.status.value,
            row.available_at.astimezone(clock.BUSINESS_TZ).isoformat(timespec="seconds"),
        ]
        for row in selectors.earning_rows(entries.iterator(chunk_size=500))
    )
    return csv_download(
        itertools.chain([CSV_HEADER], rows), filename=f"apertur-earnings-{clock.business_date(now)}.csv"
    )
