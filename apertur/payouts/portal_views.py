"""Partner portal pages for payouts: one payout with its commission entries, and the statement CSV (every
payout, or one). The history and the "why not paid" card live on the PayPal email page
(``partners.views.payouts``), which reads :mod:`apertur.payouts.selectors` too. Thin: parse, read, render."""

from __future__ import annotations

import datetime as dt
import itertools

from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from apertur.core import clock
from apertur.core.errors import NotFound
from apertur.core.money import decimal_string
from apertur.core.spreadsheet import cell, csv_download
from apertur.partners.decorators import approved_partner_required
from apertur.partners.models import Partner
from apertur.payouts import selectors

CSV_HEADER = [
    "payout_reference",
    "period",
    "payout_status",
    "payout_amount_cad",
    "sent_date",
    "paid_date",
    "returned_date",
    "payment_date",
    "customer",
    "project",
    "kind",
    "amount_cad",
    "entry_status",
]


@never_cache
@approved_partner_required
@require_safe
def payout_detail(request: HttpRequest, partner: Partner, payout_id: int) -> HttpResponse:
    try:
        payout = selectors.payout_detail(partner=partner, payout_id=payout_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    page = selectors.payout_entry_page(payout=payout, page=request.GET.get("page"))
    context = {
        "partner": partner,
        "section": "payouts",
        "payout": payout,
        "lines": page.rows,
        "page": page,
        "totals": selectors.payout_totals(payout=payout),
    }
    return render(request, "payouts/detail.html", context)


@never_cache
@approved_partner_required
@require_safe
def statement_csv(request: HttpRequest, partner: Partner) -> HttpResponseBase:
    """Every payout of the partner, one row per commission entry."""
    return _statement(partner, None, f"apertur-payouts-{clock.business_date()}.csv")


@never_cache
@approved_partner_required
@require_safe
def payout_statement_csv(request: HttpRequest, partner: Partner, payout_id: int) -> HttpResponseBase:
    """One payout of the partner, one row per commission entry."""
    return _statement(partner, payout_id, "")


def _statement(partner: Partner, payout_id: int | None, filename: str) -> HttpResponseBase:
    pairs = selectors.statement(partner=partner, payout_id=payout_id)
    try:
        first = next(pairs, None)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    if payout_id is not None and first is not None:
        filename = f"apertur-payout-{first[0].reference}.csv"
    if first is None:
        return csv_download([CSV_HEADER], filename=filename)
    rows = (
        [
            payout.reference,
            payout.period,
            payout.status,
            decimal_string(payout.amount_cents),
            _date(payout.sent_at),
            _date(payout.paid_at),
            _date(payout.returned_at),
            *(
                [
                    line.date.isoformat(),
                    cell(line.customer),
                    cell(line.project),
                    line.kind,
                    decimal_string(line.amount_cents),
                    "released" if line.released else "included",
                ]
                if line is not None
                else ["", "", "", "", "", ""]
            ),
        ]
        for payout, line in itertools.chain([first], pairs)
    )
    return csv_download(itertools.chain([CSV_HEADER], rows), filename=filename)


def _date(at: dt.datetime | None) -> str:
    return clock.business_date(at).isoformat() if at is not None else ""
