"""Money at scale (issue 10): the commission ledger for 1,000,000 generated payments across 10,000 partners, the
payout run for those partners against the PayPal emulator, and the dashboard of the largest partner. Prints
times, query counts and peak memory; asserts nothing about time (shared machines are noisy).

    .venv/bin/python bench/money.py            # 1,000,000 payments, 10,000 partners (a few minutes)
    .venv/bin/python bench/money.py --small    # 10,000 payments, 100 partners (seconds)

Runs on PostgreSQL in its own database, ``apertur_bench_money`` (dropped and created here; ``--keep`` leaves it
for inspection). ``BENCH_PG`` overrides the server (default postgres://postgres@127.0.0.1:5432),
``BENCH_MONEY_DB`` the database's name.

What is measured, and what is not:

- setup (not measured, printed for information): users, partners, attributions, projects, payments, refunds
  and disputes are generated with COPY. Every customer pays monthly for 10 months; customers are spread over
  partners by a power law (weight rank^-0.7), each partner having at least one Business customer; 2 % of
  customers are attributed after their first payments (those payments earn nothing), 0.3 % of payments are
  refunded (half in full), 0.05 % disputed (open, won or lost).
- ledger, per event (measured on a sample, for comparison): ``commissions.services.on_payment`` one payment at
  a time, as the Stripe webhook calls it; the figure for all payments is an extrapolation. Its entries are then
  deleted so the bulk step writes them again, and compared with what the bulk step writes.
- ledger, bulk (measured): ``commissions.services.on_payments()`` over every payment: the same rule function
  as the webhook path, the writes batched, refunds and disputes settled one payment at a time by the webhook
  path's own functions.
- payout run (measured): ``payouts.services.run(period=<last month>, dry_run=False, client=...)`` against the
  emulator in its own process (``python -m apertur.integrations.paypal.emulator``, over loopback: PayPal is
  another machine, and in this process its request handling would take turns with the run on one GIL), with
  ``--workers`` threads. It is the first run over the whole ledger (every earning so far is paid in it): the
  worst case, not a steady month.
- dashboard (measured): each selector of ``/partners/commissions/`` and of the Payouts page for the partner
  with the most payments (median of 5 warm calls, with its query count), then both pages through Django's
  test client (server time of the whole view, template included).

Peak memory is the process's peak resident set size during each step (Linux: VmHWM, reset before the step
through /proc/self/clear_refs), plus its growth over the step.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_NAME = os.environ.get("BENCH_MONEY_DB", "apertur_bench_money")
SERVER = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432").rstrip("/")
UTC = dt.UTC
MONTHS_PAID = 10  # every customer pays this many monthly invoices
PER_EVENT_SAMPLE = 1_000

ROWS: list[tuple[str, str, str, str, str]] = []  # step, time, queries, peak RSS, note


# --- measuring -------------------------------------------------------------------------------------------


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_kb() -> int:
    value = _status_kb("VmHWM")
    if value is not None:
        return value
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class QueryCounter:
    """Counts the statements this thread's connection executes (Django's query log keeps 9,000 at most)."""

    def __init__(self) -> None:
        self.count = 0
        self._hook: Any = None

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        self.count += 1
        return execute(sql, params, many, context)

    def __enter__(self) -> QueryCounter:
        from django.db import connection

        self._hook = connection.execute_wrapper(self)
        self._hook.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hook.__exit__(*exc)


@contextmanager
def step(name: str, note: str = "", *, count_queries: bool = False) -> Iterator[dict[str, Any]]:
    out: dict[str, Any] = {"note": note}
    rss_before = _status_kb("VmRSS") or 0
    _reset_peak()
    counter = QueryCounter()
    start = time.perf_counter()
    with counter:
        yield out
    elapsed = time.perf_counter() - start
    peak = _peak_kb()
    queries = str(counter.count) if count_queries else ""
    mem = f"{peak / 1024:,.0f} MiB (+{max(0, peak - rss_before) / 1024:,.0f})"
    ROWS.append((name, f"{elapsed:,.2f} s", queries, mem, out["note"]))
    print(f"  {name}: {elapsed:,.2f} s  peak {mem}  {out['note']}", flush=True)


def print_table(title: str, rows: list[tuple[str, str, str, str, str]]) -> None:
    head = ("step", "time", "queries", "peak RSS (growth)", "note")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(4)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(head[:4], widths, strict=True)) + "  " + head[4])
    print("  ".join("-" * w for w in widths) + "  " + "-" * 4)
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4])


# --- the database ----------------------------------------------------------------------------------------


def bench_environment() -> tempfile.TemporaryDirectory[str]:
    """This process's settings for a bench on its own PostgreSQL database (``DB_NAME``), mail kept in a temporary
    directory (returned: it lives as long as the caller keeps it)."""
    os.environ["DATABASE_URL"] = f"{SERVER}/{DB_NAME}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "apertur.config.settings"
    os.environ.pop("DEBUG", None)
    mail_dir = tempfile.TemporaryDirectory(prefix="apertur-bench-mail-")
    os.environ["APERTUR_MAIL_DIR"] = mail_dir.name
    return mail_dir


def recreate_database() -> None:
    import psycopg

    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def drop_database() -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


def copy_rows(table: str, columns: list[str], rows: Any) -> int:
    from django.db import connection

    n = 0
    with connection.cursor() as wrapper:
        cursor = wrapper.cursor
        with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                n += 1
    return n


def reset_sequences() -> None:
    from django.apps import apps
    from django.core.management.color import no_style
    from django.db import connection

    models = [m for m in apps.get_models() if m._meta.app_label in {"accounts", "partners", "referrals", "projects"}]
    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_sql(no_style(), models):
            cursor.execute(sql)


# --- generated data ---------------------------------------------------------------------------------------


def add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def generate(*, payments: int, partners: int, seed: int = 10) -> dict[str, Any]:
    """COPY the world in; return what the steps need (period, ids)."""
    from django.db import transaction

    from apertur.core.money import Money, convert
    from apertur.projects.models import Plan

    rng = random.Random(seed)  # noqa: S311 - generated data, not secrets
    now = dt.datetime.now(UTC)
    this_month = now.date().replace(day=1)
    period_month = add_months(this_month, -1)  # last month: its run (the 15th) is in the past
    first_month = add_months(period_month, -12)
    period = f"{period_month.year:04d}-{period_month.month:02d}"
    plans = {p.name: p for p in Plan.objects.all()}
    pro, business = plans["Pro"], plans["Business"]
    usd_rate = "1.371200"
    usd_cad = {
        pro.pk: convert(Money(1899, "USD"), to="CAD", rate=usd_rate).cents,
        business.pk: convert(Money(7299, "USD"), to="CAD", rate=usd_rate).cents,
    }
    customers = max(partners, payments // MONTHS_PAID)
    joined = dt.datetime(first_month.year, first_month.month, 1, tzinfo=UTC) - dt.timedelta(days=30)
    password = "!unusable"

    # Partners' users are ids 1..partners, customers partners+1..partners+customers.
    weights = [1 / (rank**0.7) for rank in range(1, partners + 1)]
    owner: list[int] = list(range(1, partners + 1))  # each partner has one (Business) customer at least
    owner += rng.choices(range(1, partners + 1), weights=weights, k=customers - partners)
    with transaction.atomic():
        copy_rows(
            "accounts_user",
            [
                "id",
                "password",
                "is_superuser",
                "public_id",
                "email",
                "is_active",
                "is_staff",
                "date_joined",
                "email_confirmed_at",
            ],
            (
                (
                    uid,
                    password,
                    False,
                    f"usr_bench{uid:09d}",
                    f"partner{uid}@bench.example" if uid <= partners else f"customer{uid}@bench.example",
                    True,
                    False,
                    joined,
                    joined,
                )
                for uid in range(1, partners + customers + 1)
            ),
        )
        copy_rows(
            "partners_partner",
            [
                "id",
                "status",
                "company_name",
                "website",
                "use_case",
                "expected_customers",
                "applied_at",
                "reviewed_at",
                "review_reason",
                "suspension_reason",
                "user_id",
                "paypal_email",
                "paypal_pending_email",
                "paypal_token_hash",
                "paypal_verified_at",
                "payouts_hold_reason",
            ],
            (
                (
                    pid,
                    "approved",
                    f"Partner {pid}",
                    f"https://p{pid}.example",
                    "bench",
                    "1000+",
                    joined,
                    joined,
                    "",
                    "",
                    pid,
                    f"paypal{pid}@bench.example",
                    "",
                    "",
                    joined,
                    "",
                )
                for pid in range(1, partners + 1)
            ),
        )
        plan_of: list[int] = []
        currency_of: list[str] = []
        start_of: list[int] = []
        day_of: list[int] = []
        attributed_at: list[dt.datetime] = []
        for i in range(customers):
            plan_of.append(business.pk if i < partners else rng.choice((pro.pk, pro.pk, business.pk)))
            currency_of.append("USD" if i >= partners and rng.random() < 0.1 else "CAD")
            start_of.append(rng.randrange(0, 12 - MONTHS_PAID + 1))
            day_of.append(rng.randrange(1, 29))
            first_paid = dt.datetime.combine(add_months(first_month, start_of[-1]), dt.time(12), UTC).replace(
                day=day_of[-1]
            )
            late = i >= partners and rng.random() < 0.02  # attributed after two payments: those earn nothing
            attributed_at.append(first_paid + dt.timedelta(days=45) if late else first_paid - dt.timedelta(days=5))
        copy_rows(
            "referrals_attribution",
            ["id", "source", "at", "customer_id", "partner_id"],
            ((i + 1, "referral", attributed_at[i], partners + i + 1, owner[i]) for i in range(customers)),
        )
        copy_rows(
            "projects_project",
            ["id", "public_id", "name", "created_at", "owner_id", "plan_id", "description", "notify_owner_on_upload"],
            (
                (i + 1, f"prj_bench{i + 1:09d}", f"Project {i + 1}", joined, partners + i + 1, plan_of[i], "", False)
                for i in range(customers)
            ),
        )
        prices = {pro.pk: pro.price_cents, business.pk: business.price_cents}
        usd_prices = {pro.pk: 1899, business.pk: 7299}
        refunds: list[tuple[int, int, int, int, dt.datetime]] = []  # payment, cents, cad cents, n, at
        disputes: list[tuple[int, str, dt.datetime, dt.datetime | None]] = []
        customer_payments = [0] * customers

        def payment_rows() -> Iterator[tuple[Any, ...]]:
            pk = 0
            for month in range(MONTHS_PAID):
                for i in range(customers):
                    if pk >= payments:
                        return
                    pk += 1
                    customer_payments[i] += 1
                    paid_at = dt.datetime.combine(add_months(first_month, start_of[i] + month), dt.time(12), UTC)
                    paid_at = paid_at.replace(day=day_of[i])
                    usd = currency_of[i] == "USD"
                    amount = usd_prices[plan_of[i]] if usd else prices[plan_of[i]]
                    cad = usd_cad[plan_of[i]] if usd else amount
                    roll = rng.random()
                    if roll < 0.003:
                        full = roll < 0.0015
                        part = amount if full else amount // 4
                        refunds.append(
                            (
                                pk,
                                part,
                                cad
                                if full
                                else convert(Money(part, "CAD"), to="CAD", rate=(usd_rate if usd else "1")).cents,
                                len(refunds),
                                paid_at + dt.timedelta(days=3),
                            )
                        )
                    elif roll < 0.0035:
                        status = rng.choice(("open", "won", "lost"))
                        opened = paid_at + dt.timedelta(days=5)
                        disputes.append((pk, status, opened, None if status == "open" else opened + dt.timedelta(10)))
                    yield (
                        pk,
                        f"in_bench{pk:09d}",
                        amount,
                        currency_of[i],
                        "",
                        paid_at,
                        i + 1,
                        cad,
                        usd_rate if usd else "1",
                        f"ch_bench{pk:09d}",
                        partners + i + 1,
                    )

        n_payments = copy_rows(
            "projects_payment",
            [
                "id",
                "external_id",
                "amount_cents",
                "currency",
                "description",
                "paid_at",
                "project_id",
                "amount_cad_cents",
                "cad_rate",
                "charge_id",
                "customer_id",
            ],
            payment_rows(),
        )
        copy_rows(
            "projects_refund",
            ["id", "external_id", "amount_cents", "created_at", "payment_id", "amount_cad_cents"],
            ((n + 1, f"re_bench{n:09d}", cents, at, pk, cad) for pk, cents, cad, n, at in refunds),
        )
        copy_rows(
            "projects_dispute",
            ["id", "external_id", "amount_cents", "status", "opened_at", "closed_at", "payment_id"],
            (
                (n + 1, f"dp_bench{n:09d}", 0, status, opened, closed, pk)
                for n, (pk, status, opened, closed) in enumerate(disputes)
            ),
        )
        reset_sequences()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {
        "period": period,
        "payments": n_payments,
        "customers": customers,
        "partners": partners,
        "refunds": len(refunds),
        "disputes": len(disputes),
    }


# --- the steps --------------------------------------------------------------------------------------------


def ledger_snapshot(payment_ids: list[int]) -> list[tuple[Any, ...]]:
    from apertur.commissions.models import CommissionEntry

    return sorted(
        CommissionEntry.objects.filter(payment_id__in=payment_ids).values_list(
            "payment_id", "partner_id", "kind", "amount_cents", "available_at", "source_key"
        )
    )


def measure_ledger(world: dict[str, Any]) -> None:
    from django.db import transaction
    from django.db.models import Count, Sum

    from apertur.commissions import services
    from apertur.commissions.models import CommissionEntry
    from apertur.projects.models import Payment

    sample = list(Payment.objects.filter(customer__attribution__isnull=False).order_by("pk")[:PER_EVENT_SAMPLE])
    ids = [p.pk for p in sample]
    with step("ledger: per event (sample)", count_queries=True) as out:
        for payment in sample:
            with transaction.atomic():
                services.on_payment(payment=payment)
    per = float(ROWS[-1][1].split()[0].replace(",", "")) / len(sample)
    ROWS[-1] = (
        *ROWS[-1][:4],
        f"{len(sample)} payments, {per * 1e3:.2f} ms each → {per * world['payments']:,.0f} s "
        f"for all {world['payments']:,} (extrapolated)",
    )
    print(f"    {ROWS[-1][4]}")
    expected = ledger_snapshot(ids)
    CommissionEntry.objects.filter(payment_id__in=ids).delete()
    with step("ledger: bulk, every payment") as out:
        result = services.on_payments()
        out["note"] = (
            f"{result.payments:,} payments, {result.earned:,} earned entries, {result.followed_up:,} settled one by one"
        )
    got = ledger_snapshot(ids)
    same = "identical" if got == expected else f"DIFFERENT ({len(got)} vs {len(expected)} entries)"
    print(f"    bulk vs per-event on the {len(ids)} sampled payments: {same}")
    totals = CommissionEntry.objects.aggregate(n=Count("pk"), s=Sum("amount_cents"))
    print(f"    ledger: {totals['n']:,} entries, net {totals['s']:,} CAD cents")
    ROWS[-1] = (*ROWS[-1][:4], ROWS[-1][4] + f"; sample {same}")


def analyze() -> None:
    """What autovacuum does on a live database after a bulk change (and is off on some servers, this
    machine's included): statistics for the planner, and the visibility map that index-only scans need.
    Not measured."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


@contextmanager
def emulator_process() -> Iterator[str]:
    """The PayPal emulator in its own process on a free loopback port (default credentials), stopped after."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYPAL_")}
    cmd = [sys.executable, "-m", "apertur.integrations.paypal.emulator", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                emulator_counters(base_url)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the PayPal emulator did not start") from None
                time.sleep(0.1)
        yield base_url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def emulator_counters(base_url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{base_url}/emulator/state", timeout=5) as resp:  # noqa: S310 - loopback
        return dict(json.loads(resp.read())["counters"])


def measure_payouts(world: dict[str, Any]) -> None:
    from collections import Counter

    from apertur.integrations.paypal.client import PayPalClient
    from apertur.integrations.paypal.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
    from apertur.payouts import services

    period = world["period"]
    with emulator_process() as base_url, PayPalClient(base_url, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET) as client:
        with step(f"payout run {period} (dry run)", count_queries=True) as out:
            decisions = services.run(period=period, dry_run=True)
            out["note"] = ", ".join(f"{k} {v:,}" for k, v in Counter(d.reason for d in decisions).most_common())
        from django.conf import settings

        with step(f"payout run {period}, {settings.PAYOUT_RUN_WORKERS} thread(s)", count_queries=True) as out:
            decisions = services.run(period=period, dry_run=False, client=client)
            reasons = Counter(d.reason for d in decisions)
            paid = sum(d.amount_cents for d in decisions if d.reason == services.Reason.PAID)
            out["note"] = ", ".join(f"{k} {v:,}" for k, v in reasons.most_common()) + f"; {paid:,} CAD cents"
        elapsed = float(ROWS[-1][1].split()[0].replace(",", ""))
        queries = int(ROWS[-1][2])
        n = max(1, len(decisions))
        threads = settings.PAYOUT_RUN_WORKERS
        per_queries = f" and {queries / n:.1f} queries" if threads <= 1 else ""
        if threads > 1:  # the counter sees this thread's connection only
            ROWS[-1] = (*ROWS[-1][:2], f"{queries} + threads'", *ROWS[-1][3:])
        ROWS[-1] = (
            *ROWS[-1][:4],
            ROWS[-1][4] + f"; {elapsed / n * 1e3:.2f} ms{per_queries} per partner; "
            f"{emulator_counters(base_url)['batches_created']:,} batches at the emulator",
        )
        print(f"    {ROWS[-1][4]}")
        with step(f"payout run {period} again (nothing to do)", count_queries=True) as out:
            again = services.run(period=period, dry_run=False, client=client)
            out["note"] = ", ".join(f"{k} {v:,}" for k, v in Counter(d.reason for d in again).most_common())


def _median_ms(fn: Callable[[], object], repeat: int = 5) -> tuple[float, int]:
    fn()  # warm: plans, caches
    samples = []
    queries = 0
    for _ in range(repeat):
        with QueryCounter() as counter:
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
        queries = counter.count
    return statistics.median(samples) * 1e3, queries


def measure_dashboard(world: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    from urllib.parse import quote

    from django.db.models import Count
    from django.test import Client

    from apertur.commissions import selectors as cs
    from apertur.commissions.models import CommissionEntry
    from apertur.core import clock
    from apertur.partners.models import Partner
    from apertur.payouts import selectors as ps

    top = CommissionEntry.objects.values("partner_id").annotate(n=Count("pk")).order_by("-n").first()
    assert top is not None
    partner = Partner.objects.select_related("user").get(pk=top["partner_id"])
    now = dt.datetime.now(UTC)
    last = ps.payout_list(partner=partner).rows
    payout = last[0] if last else None
    checks: list[tuple[str, Callable[[], object]]] = [
        ("balance", lambda: cs.balance(partner=partner, at=now)),
        ("customer_choices", lambda: cs.customer_choices(partner=partner)),
        ("earning_page (page 1, newest)", lambda: cs.earning_page(partner=partner, at=now)),
        (
            "earning_page (status=eligible)",
            lambda: cs.earning_page(partner=partner, filters=cs.EarningFilters(status="eligible"), at=now),
        ),
        (
            "earning_page (page 40, largest)",
            lambda: cs.earning_page(partner=partner, filters=cs.EarningFilters(sort="-amount"), page=40, at=now),
        ),
        ("monthly_earnings", lambda: cs.monthly_earnings(partner=partner, at=now)),
        ("referral_funnel", lambda: cs.referral_funnel(partner=partner)),
        ("connected_projects", lambda: cs.connected_projects(partner=partner)),
        ("next_payout", lambda: cs.next_payout(partner=partner, at=now)),
        ("payouts: payout_list", lambda: ps.payout_list(partner=partner)),
        ("payouts: payout_status", lambda: ps.payout_status(partner=partner, at=now)),
    ]
    if last:
        first_payout = last[-1]  # newest first: the first run's payout, the one with every entry so far
        checks.append(
            ("payouts: payout_entry_page (first payout, page 1)", lambda: ps.payout_entry_page(payout=first_payout))
        )
        checks.append(("payouts: payout_totals (first payout)", lambda: ps.payout_totals(payout=first_payout)))
    rows: list[tuple[str, str, str, str, str]] = []
    print(f"\nDashboard of partner {partner.pk} ({top['n']:,} entries, the most):")
    page_total = 0.0
    page_queries = 0
    page_names = {
        "balance",
        "customer_choices",
        "earning_page (page 1, newest)",
        "monthly_earnings",
        "referral_funnel",
        "connected_projects",
        "next_payout",
    }
    for name, fn in checks:
        ms, queries = _median_ms(fn)
        rows.append((name, f"{ms:,.1f} ms", str(queries), "", ""))
        if name in page_names:
            page_total += ms
            page_queries += queries
        print(f"  {name:<50} {ms:9.1f} ms  {queries:3d} queries", flush=True)
    rows.append(("= /partners/commissions/ selectors", f"{page_total:,.1f} ms", str(page_queries), "", "sum"))
    client = Client(SERVER_NAME="localhost")
    client.force_login(partner.user)
    # The customer with the most earnings for this partner, by id and by the masked label the form offers.
    busiest = (
        CommissionEntry.objects.filter(partner=partner, customer__isnull=False)
        .values("customer__public_id", "customer__email")
        .annotate(n=Count("pk"))
        .order_by("-n", "customer__public_id")
        .first()
    )
    assert busiest is not None
    label = quote(cs.mask_email(busiest["customer__email"]))
    first_paid = CommissionEntry.objects.filter(partner=partner).order_by("paid_at").values_list("paid_at", flat=True)
    quarter = clock.business_date(first_paid[0]) + dt.timedelta(days=90)
    commissions = "/partners/commissions/"
    # Every variant of the commissions page the filter form and the pager can ask for: each status, each sort,
    # a deep page, past the last page (the nearest page is shown), a customer by id and by label, a date range.
    pages = [
        ("GET /partners/commissions/", commissions),
        *((f"  ?status={s}", f"{commissions}?status={s}") for s in ("eligible", "pending", "paid", "reversed")),
        *((f"  ?sort={s}", f"{commissions}?sort={s}") for s in ("date", "-amount", "amount")),
        ("  ?page=40", f"{commissions}?page=40"),
        ("  ?sort=-amount&page=40", f"{commissions}?sort=-amount&page=40"),
        ("  ?sort=amount&page=9999 (last)", f"{commissions}?sort=amount&page=9999"),
        ("  ?status=eligible&sort=-amount&page=20", f"{commissions}?status=eligible&sort=-amount&page=20"),
        ("  ?customer=<busiest, by id>", f"{commissions}?customer={busiest['customer__public_id']}"),
        ("  ?customer=<busiest, by label>&sort=-amount", f"{commissions}?customer={label}&sort=-amount"),
        ("  ?from=&to= (first 90 days)", f"{commissions}?to={quarter.isoformat()}&from=2000-01-01"),
        ("GET /partners/payouts/", "/partners/payouts/"),
    ]
    if payout is not None:
        # The partner's payouts newest first: the last one in the list is the first run (every entry so far).
        first_payout = last[-1]
        detail = f"/partners/payouts/{first_payout.id}/"
        pages.append((f"GET /partners/payouts/<first payout, {first_payout.entry_count:,} entries>/", detail))
        pages.append(("  ?page=9999 (last)", f"{detail}?page=9999"))
        if payout.id != first_payout.id:
            pages.append(
                (
                    f"GET /partners/payouts/<latest payout, {payout.entry_count:,} entries>/",
                    f"/partners/payouts/{payout.id}/",
                )
            )
    for name, url in pages:

        def get(url: str = url) -> None:
            response = client.get(url, secure=True)
            assert response.status_code == 200, (url, response.status_code)

        ms, queries = _median_ms(get)
        rows.append((name, f"{ms:,.1f} ms", str(queries), "", "whole view, test client"))
        print(f"  {name:<50} {ms:9.1f} ms  {queries:3d} queries", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="10,000 payments across 100 partners")
    parser.add_argument("--payments", type=int, help="how many payments (default 1,000,000; --small 10,000)")
    parser.add_argument("--partners", type=int, help="how many partners (default 10,000; --small 100)")
    parser.add_argument("--workers", type=int, default=4, help="payout run threads (PAYOUT_RUN_WORKERS), default 4")
    parser.add_argument("--keep", action="store_true", help=f"keep the {DB_NAME} database afterwards")
    parser.add_argument("--skip-payouts", action="store_true", help="leave the payout run out (ledger and dashboard)")
    parser.add_argument(
        "--dashboard-only",
        action="store_true",
        help=f"only the dashboard, on the {DB_NAME} a --keep run left",
    )
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C: the finally blocks stop the emulator process and drop the database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    payments = args.payments or (10_000 if args.small else 1_000_000)
    partners = args.partners or (100 if args.small else 10_000)

    mail_dir = bench_environment()
    try:
        if args.dashboard_only:
            args.keep = True
        else:
            recreate_database()
    except Exception as exc:
        print(f"bench/money.py: PostgreSQL at {SERVER} is not reachable ({exc}); skipped.")
        return
    import django

    django.setup()
    import logging

    from django.core.management import call_command

    logging.getLogger("apertur").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from django.conf import settings

    settings.PAYOUT_RUN_WORKERS = args.workers
    print(f"Money at scale: {payments:,} payments, {partners:,} partners, PostgreSQL database {DB_NAME}")
    try:
        call_command("migrate", verbosity=0)
        if args.dashboard_only:
            print_table("Dashboard of the largest partner (median of 5 warm calls)", measure_dashboard({}))
            return
        with step("setup: generate (COPY, not measured)") as out:
            world = generate(payments=payments, partners=partners)
            out["note"] = (
                f"{world['payments']:,} payments, {world['customers']:,} customers, {world['refunds']:,} refunds, "
                f"{world['disputes']:,} disputes"
            )
        measure_ledger(world)
        analyze()
        if not args.skip_payouts:
            measure_payouts(world)
            analyze()
        dashboard = measure_dashboard(world)
        print_table("Ledger and payout run", ROWS)
        print_table("Dashboard of the largest partner (median of 5 warm calls)", dashboard)
        print("\nTargets: ledger of 1M payments < 60 s; payout run for 10k partners < 30 s; dashboard < 100 ms.")
    finally:
        mail_dir.cleanup()
        if not args.keep:
            drop_database()


if __name__ == "__main__":
    main()
