"""Staff views of payouts (issue 8, "Operations"). Everything is read-only: money records change only through
the services (the run, reconciliation, :func:`services.retry`), which lock, audit and tell the partner. The
admin's own save would write a stale copy of a row a webhook may be updating, so there is no change form,
no add and no delete. Staff act through two actions, a retry (after a confirmation page, since it sends
money) and the finance CSV, and through the review page of a ``needs_review`` payout (what the CLI's
``apertur payouts resolve`` does, for staff who only have the web)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Q, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from apertur.core import clock
from apertur.core.admin import EstimatedCountPaginator, IndexedValuesFilter, SafeFilters
from apertur.core.errors import AperturError
from apertur.core.http import client_ip
from apertur.core.money import format_cents
from apertur.core.spreadsheet import csv_download
from apertur.payouts import finance, services
from apertur.payouts.models import Payout, PayoutEntry, PayoutRun, PayoutStatus, PayPalEvent
from apertur.payouts.selectors import ENTRY_PAGE_SIZE


class ReadOnlyAdmin(SafeFilters, admin.ModelAdmin):
    """Viewable by staff with the view permission; never added, changed or deleted here."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class FirstEntries(BaseInlineFormSet):
    """The inline's rows: the first ``PayoutEntryInline.shown`` links only. A large partner's payout holds tens of
    thousands of entries (18,110 for the largest of the money-at-scale benchmark), and the admin would build, hold
    in memory and render a form for every one of them on each view of the payout."""

    def get_queryset(self) -> Any:
        if not hasattr(self, "_queryset"):
            self._queryset = super().get_queryset()[: PayoutEntryInline.shown]
        return self._queryset


class PayoutEntryInline(admin.TabularInline):
    """The commission entries the payout pays (or paid, until ``released_at`` when the money came back): the first
    ``shown`` of them; the payout's own ``Commission entries`` line says how many there are in all."""

    model = PayoutEntry
    formset = FirstEntries
    shown = ENTRY_PAGE_SIZE  # as many as a page of the partner's own view of the payout
    verbose_name = "commission entry"
    verbose_name_plural = "commission entries"  # Django's own plural of "payout entry" is "payout entrys"
    extra = 0
    can_delete = False
    fields = ("entry", "kind", "amount", "payment_paid_at", "available_at", "released_at")
    readonly_fields = fields
    ordering = ("entry__available_at", "entry_id")

    def get_queryset(self, request: HttpRequest) -> QuerySet[PayoutEntry]:
        return super().get_queryset(request).select_related("entry__payment")

    @admin.display(description="Kind")
    def kind(self, obj: PayoutEntry) -> str:
        return obj.entry.get_kind_display()

    @admin.display(description="Amount")
    def amount(self, obj: PayoutEntry) -> str:
        return format_cents(obj.entry.amount_cents)

    @admin.display(description="Payment paid")
    def payment_paid_at(self, obj: PayoutEntry) -> Any:
        return obj.entry.payment.paid_at

    @admin.display(description="Available")
    def available_at(self, obj: PayoutEntry) -> Any:
        return obj.entry.available_at

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class HeldFilter(admin.SimpleListFilter):
    """Payouts PayPal holds (item ONHOLD or BLOCKED): all of them, or those held past ``PAYOUT_HELD_ALERT_DAYS``
    (what the staff alert lists)."""

    title = "held by PayPal"
    parameter_name = "held"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        days = services.held_alert_after().days
        return [("any", "Held now"), ("over", f"Held more than {days} days")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Payout]) -> QuerySet[Payout]:
        if self.value() == "any":
            return queryset.filter(status=PayoutStatus.HELD)
        if self.value() == "over":
            return queryset.filter(services.held_too_long(clock.now()))
        return queryset


class ProcessingFilter(admin.SimpleListFilter):
    """Payouts sent to PayPal and not settled nor held yet (ours ``sent`` or ``processing``): all of them, or those
    PayPal has had to process for more than ``PAYOUT_PROCESSING_ALERT_DAYS`` (what the staff alert lists)."""

    title = "processing at PayPal"
    parameter_name = "processing"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        days = services.processing_alert_after().days
        return [("any", "Processing now"), ("over", f"Processing more than {days} days")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Payout]) -> QuerySet[Payout]:
        if self.value() == "any":
            return queryset.filter(status__in=[PayoutStatus.SENT, PayoutStatus.PENDING])
        if self.value() == "over":
            return queryset.filter(services.processing_too_long(clock.now()))
        return queryset


@admin.register(Payout)
class PayoutAdmin(ReadOnlyAdmin):
    list_display = (
        "partner_company",
        "partner_email",
        "period",
        "amount",
        "status",
        "sender_item_id",
        "sender_batch_id",
        "sent_at",
        "paid_at",
        "returned_at",
        "held",
    )
    list_filter = ("status", HeldFilter, ProcessingFilter, "period", "currency")
    search_fields = (
        "partner__user__email",
        "partner__company_name",
        "sender_item_id",
        "sender_batch_id",
        "paypal_batch_id",
        "paypal_item_id",
    )
    date_hierarchy = "created_at"
    list_select_related = ("partner__user",)
    inlines = (PayoutEntryInline,)
    actions = ("retry_payouts", "export_csv")
    fields = (
        "partner",
        "partner_review",
        "period",
        "amount",
        "status",
        "item_status",
        "sender_item_id",
        "sender_batch_id",
        "batch_number",
        "paypal_batch_id",
        "paypal_item_id",
        "attempts",
        "created_at",
        "sent_at",
        "paid_at",
        "returned_at",
        "checked_at",
        "held_since",
        "held_alerted_at",
        "processing_alerted_at",
        "detail",
        "entries_listed",
    )
    readonly_fields = fields

    @admin.display(description="Commission entries")
    def entries_listed(self, obj: Payout) -> str:
        total = PayoutEntry.objects.filter(payout=obj).count()  # the unique (payout, entry) index alone
        if total <= PayoutEntryInline.shown:
            return f"{total:,}, all listed below"
        return f"{total:,}; the first {PayoutEntryInline.shown:,} by date available are listed below"

    @admin.display(description="Company", ordering="partner__company_name")
    def partner_company(self, obj: Payout) -> str:
        return obj.partner.company_name

    @admin.display(description="Partner email", ordering="partner__user__email")
    def partner_email(self, obj: Payout) -> str:
        return obj.partner.user.email

    @admin.display(description="Amount", ordering="amount_cents")
    def amount(self, obj: Payout) -> str:
        return format_cents(obj.amount_cents, obj.currency)

    @admin.display(description="Held by PayPal", ordering="held_since")
    def held(self, obj: Payout) -> str:
        """PayPal's status and since when (Toronto date), for a payout PayPal holds; blank otherwise."""
        if obj.status != PayoutStatus.HELD or obj.held_since is None:
            return ""
        days = (clock.now() - obj.held_since).days
        alerted = ", staff alerted" if obj.held_alerted_at else ""
        return (
            f"{obj.item_status or 'held'} since {clock.business_date(obj.held_since).isoformat()} ({days} d{alerted})"
        )

    @admin.display(description="Partner review page")
    def partner_review(self, obj: Payout) -> str:
        review = ""
        if obj.status == PayoutStatus.NEEDS_REVIEW:
            url = reverse("admin:payouts_payout_resolve", args=[obj.pk])
            review = format_html(' · <a href="{}"><strong>Resolve this review</strong></a>', url)
        return format_html('<a href="/partners/staff/{}/">Hold or release payouts</a>{}', obj.partner_id, review)

    @admin.display(description="Partner review page")
    def partner_review_page(self, obj: Payout) -> str:
        """``partner_review`` for staff who may only look: no "Resolve this review" link to a page they cannot
        open (resolve_view needs the change permission)."""
        return format_html('<a href="/partners/staff/{}/">Hold or release payouts</a>', obj.partner_id)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:  # django-stubs: a union of field specs
        swap = not self.has_retry_permission(request)
        return [("partner_review_page" if swap and f == "partner_review" else f) for f in self.fields or ()]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return list(self.get_fields(request, obj))

    def get_urls(self) -> list[URLPattern]:
        resolve = self.admin_site.admin_view(self.resolve_view)
        return [path("<int:payout_id>/resolve-review/", resolve, name="payouts_payout_resolve"), *super().get_urls()]

    def resolve_view(self, request: HttpRequest, payout_id: int) -> HttpResponse:
        """A ``needs_review`` payout's answer: PayPal has it (its batch id, checked with PayPal by the service) or
        it was not paid (the money is back in the balance). GET shows the payout and the two answers; POST acts,
        through :func:`services.resolve_review` (locks, audits, and refuses a payout no longer in review)."""
        if not self.has_retry_permission(request):  # it records money as paid or releases it: change permission
            raise Http404("No such page.")
        payout = Payout.objects.select_related("partner__user").filter(pk=payout_id).first()
        if payout is None:
            raise Http404("No such payout.")
        error = ""
        if request.method == "POST":
            answer = request.POST.get("answer", "")
            batch_id = request.POST.get("paypal_batch_id", "").strip()
            if answer not in {"paid", "not_paid"}:
                error = "Choose whether PayPal has this payout."
            else:
                try:
                    done = services.resolve_review(
                        payout=payout, actor=request.user, paypal_batch_id=batch_id, paid=answer == "paid"
                    )
                except AperturError as exc:
                    error = exc.message
                else:
                    ids = ", ".join(p.sender_item_id for p in done)
                    outcome = (
                        f"recorded as sent in PayPal batch {batch_id}; reconciliation follows each item"
                        if answer == "paid"
                        else "recorded as not paid; the money is back in the partner's balance for the next run"
                    )
                    self.message_user(request, f"{ids}: {outcome}.", messages.SUCCESS)
                    return redirect("admin:payouts_payout_change", payout.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Resolve the review of {payout.sender_item_id}",
            "subtitle": None,
            "opts": self.opts,
            "payout": payout,
            "amount": format_cents(payout.amount_cents, payout.currency),
            "in_review": payout.status == PayoutStatus.NEEDS_REVIEW,
            "error": error,
            "form": request.POST,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/payouts/resolve_review.html", context, status=400 if error else 200)

    def has_retry_permission(self, request: HttpRequest) -> bool:
        """A retry sends money: it needs the change permission, though no field is ever changed here."""
        return bool(request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}"))

    @admin.action(description="Retry selected failed/returned payouts", permissions=["retry"])
    def retry_payouts(self, request: HttpRequest, queryset: QuerySet[Payout]) -> HttpResponse | None:
        payouts = list(queryset.select_related("partner__user").order_by("id"))
        if request.POST.get("post") != "yes":
            return self._confirm_retry(request, payouts)
        for payout in payouts:
            previous = payout.sender_batch_id
            try:
                retried = services.retry(payout=payout, actor=request.user, ip=client_ip(request))
            except AperturError as exc:
                self.message_user(request, f"{previous}: not retried ({exc.code}): {exc.message}", messages.ERROR)
                continue
            amount = format_cents(retried.amount_cents, retried.currency)
            if retried.status == PayoutStatus.CREATED:
                # PayPal did not answer: the new id is saved, and only that id may be used to send it.
                self.message_user(
                    request,
                    f"{previous}: saved as {retried.sender_batch_id} for {amount} but PayPal did not answer "
                    f"({retried.detail}). Send it with `apertur payouts run --period {retried.period}`, which "
                    "reuses the same id.",
                    messages.WARNING,
                )
            elif retried.money_back:
                self.message_user(
                    request,
                    f"{previous}: retried as {retried.sender_batch_id}, PayPal refused it ({retried.detail}); "
                    f"{amount} is back in the partner's balance.",
                    messages.ERROR,
                )
            else:
                self.message_user(
                    request,
                    f"{previous}: retried as {retried.sender_batch_id}, {amount} "
                    f"{retried.get_status_display().lower()}.",
                    messages.SUCCESS,
                )
        return None

    def _confirm_retry(self, request: HttpRequest, payouts: list[Payout]) -> TemplateResponse:
        rows = [
            {
                "payout": payout,
                "amount": format_cents(payout.amount_cents, payout.currency),
                "retryable": payout.money_back,
                "held": payout.partner.payouts_held_at is not None,
            }
            for payout in payouts
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": "Retry these payouts?",
            "subtitle": None,
            "opts": self.opts,
            "rows": rows,
            "retryable_count": sum(1 for row in rows if row["retryable"] and not row["held"]),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "action": "retry_payouts",
            "media": self.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/payouts/retry_confirmation.html", context)

    @admin.action(description="Export selected as CSV for finance")
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Payout]) -> HttpResponseBase:
        # "Select all" takes every payout of every partner and month: streamed, read from the database in chunks.
        payouts = queryset.select_related("partner__user").order_by("period", "id").iterator(chunk_size=500)
        return csv_download(finance.payout_rows(payouts), filename=finance.filename(clock.now()))


class FinishedFilter(admin.SimpleListFilter):
    title = "finished"
    parameter_name = "finished"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Finished"), ("no", "Not finished")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[PayoutRun]) -> QuerySet[PayoutRun]:
        if self.value() == "yes":
            return queryset.filter(finished_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(finished_at__isnull=True)
        return queryset


@admin.register(PayoutRun)
class PayoutRunAdmin(ReadOnlyAdmin):
    list_display = ("period", "trigger", "started_at", "finished_at", "lease_until", "summary")
    list_filter = (FinishedFilter, "trigger")
    search_fields = ("period",)
    fields = ("period", "trigger", "started_at", "finished_at", "lease_until", "summary")
    readonly_fields = fields


@admin.register(PayPalEvent)
class PayPalEventAdmin(ReadOnlyAdmin):
    """A row per PayPal webhook event, kept forever (several per payout a month): as the audit log's and the Stripe
    events', every query of the list uses an index. The types by :class:`~apertur.core.admin.IndexedValuesFilter`,
    newest first from the ``(received_at, id)`` index, the count by
    :class:`~apertur.core.admin.EstimatedCountPaginator` (no second count of the whole table), a date filter instead
    of the date hierarchy (``SELECT DISTINCT DATE_TRUNC(…)`` over every row, or a year's), an exact search
    (:meth:`get_search_results`). docs/performance.md, "Task results and PayPal events at scale", has the figures."""

    list_display = ("event_id", "event_type", "status", "payout", "received_at", "processed_at", "detail")
    list_filter = ("status", ("event_type", IndexedValuesFilter), ("received_at", admin.DateFieldListFilter))
    search_fields = ("event_id",)  # shows the search box; get_search_results searches
    search_help_text = (
        "An event id (WH-…), or a payout's batch or item id (aptr-…) or PayPal batch id, exactly: that event, or the "
        "payout's events. Filter by status, type or date for the rest."
    )
    list_select_related = ("payout",)
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # a count per status and type over the whole table
    fields = ("event_id", "event_type", "status", "detail", "payout", "received_at", "processed_at", "payload")
    readonly_fields = fields

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[PayPalEvent], search_term: str
    ) -> tuple[QuerySet[PayPalEvent], bool]:
        """The event whose id is the text (its unique index), or the events of the payouts it names: their batch or
        item id (indexed) or PayPal's batch id, exactly. The payouts are read first and their ids sent as a list
        (the events' ``payout_id`` index). Django's ``icontains`` on the event id and the payouts' batch ids was
        ``UPPER(…) LIKE '%…%'`` over every event joined to its payout, for the page and again for its count."""
        term = search_term.strip()
        if not term:
            return queryset, False
        payouts = Payout.objects.using(queryset.db).filter(
            Q(sender_batch_id=term) | Q(sender_item_id=term) | Q(paypal_batch_id=term)
        )
        return queryset.filter(Q(event_id=term) | Q(payout_id__in=list(payouts.values_list("pk", flat=True)))), False
