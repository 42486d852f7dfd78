"""The ``apertur`` command (ARCHITECTURE section 6). ``--json`` output is one object on stdout, errors included
(``{"error": {"code", "message"}}``, with a non-zero exit status); without ``--json`` errors go to stderr."""

from __future__ import annotations

import errno
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Apertur Partner Platform", no_args_is_help=True, add_completion=False)
user_app = typer.Typer(help="Customer accounts", no_args_is_help=True)
partner_app = typer.Typer(help="Partners", no_args_is_help=True)
app_app = typer.Typer(help="OAuth apps", no_args_is_help=True)
mail_app = typer.Typer(help="Development mail", no_args_is_help=True)
billing_app = typer.Typer(help="Stripe billing events: simulate, import and retry", no_args_is_help=True)
commissions_app = typer.Typer(help="Partner commissions", no_args_is_help=True)
payouts_app = typer.Typer(help="Monthly PayPal payouts", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(partner_app, name="partner")
app.add_typer(app_app, name="app")
app.add_typer(mail_app, name="mail")
app.add_typer(billing_app, name="billing")
app.add_typer(commissions_app, name="commissions")
app.add_typer(payouts_app, name="payouts")

out = Console()
err = Console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apertur.config.settings")
    import django

    django.setup()


def _fail(
    message: str,
    *,
    code: str = "error",
    as_json: bool = False,
    status: int = 1,
    problems: list[dict[str, str]] | None = None,
) -> NoReturn:
    """The one way a command fails: with ``--json``, the one object on stdout is the error (ARCHITECTURE 6: a
    script reads stdout whatever happened) and, for a person watching, the message on stderr too. When the input
    had several problems (``AperturError.problems``), each is listed: ``problems`` in JSON, a line each for a
    person; ``code`` and ``message`` stay the first one's."""
    if as_json:
        error: dict[str, Any] = {"code": code, "message": message}
        if problems:
            error["problems"] = problems
        print(json.dumps({"error": error}))
        # And on stderr, as before stdout carried it: scripts written against either keep working.
        print(json.dumps({"error": error}), file=sys.stderr)
    else:
        err.print(f"[bold red]error:[/] {message}", highlight=False)
        for problem in (problems or [])[1:]:
            err.print(f"[bold red]error:[/] {problem['message']}", highlight=False)
    raise typer.Exit(status)


@contextmanager
def _errors(as_json: bool) -> Iterator[None]:
    """Turn domain errors into :func:`_fail` (exit status 1)."""
    from apertur.core.errors import AperturError

    try:
        yield
    except AperturError as exc:
        problems = [p.as_dict() for p in exc.problems] if exc.others else None
        _fail(exc.message, code=exc.code, as_json=as_json, problems=problems)


def _emit(data: dict[str, Any], as_json: bool, human: Callable[[], None]) -> None:
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        human()


# --- operations -------------------------------------------------------------------------------------


@app.command()
def migrate() -> None:
    """Apply database migrations."""
    _setup()
    from django.core.management import call_command
    from django.db import OperationalError, connection

    try:
        connection.ensure_connection()
    except OperationalError as exc:  # the one command that cannot be told to run `apertur migrate` first
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = (
            "its folder must exist and be writable"
            if connection.vendor == "sqlite"
            else "the server must answer and the database exist (create it once: createdb NAME)"
        )
        _fail(f"Cannot reach the database ({first}). Check DATABASE_URL: {where}.", code="database_not_ready")
    call_command("migrate", interactive=False, verbosity=1)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes.", min=1, max=64)] = 2,
    threads: Annotated[
        int,
        typer.Option(help="Request threads per worker process: they overlap waits on PostgreSQL.", min=1, max=64),
    ] = 4,
) -> None:
    """Serve Apertur with granian (several processes), static files included.

    granian (a Rust HTTP server, WSGI interface) parses HTTP and keeps connections alive outside the GIL;
    on one core it answers a trivial Django view about 1.6x faster than gunicorn's gthread worker, with a
    p99 several times lower (docs/performance.md). Workers that die are restarted; SIGTERM stops accepting
    connections and lets requests in flight finish (10 s)."""
    _setup()
    from django.core.management import call_command

    _check_listen(host, port)  # before granian, whose answer is a traceback of 140 lines after "Apertur on …"
    call_command("collectstatic", interactive=False, verbosity=0)
    args = [
        sys.executable,
        "-m",
        "granian",
        "--interface",
        "wsgi",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--blocking-threads",
        str(threads),
        # Keep idle request threads (and their database connections) 10 minutes, not 30 s (granian's most).
        "--blocking-threads-idle-timeout",
        "600",
        "--no-ws",
        "--access-log",
        "--respawn-failed-workers",
        "--workers-kill-timeout",
        "10",
        "apertur.config.wsgi:application",
    ]
    out.print(f"Apertur on http://{host}:{port} with {workers} worker(s)")
    sys.stdout.flush()
    os.execv(sys.executable, args)  # noqa: S606 - replaces this process with the server


def _cannot_listen(host: str, port: int) -> OSError | None:
    """Why ``host:port`` cannot be listened on now (in use, no such address), or None."""
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers: TIME_WAIT is no obstacle
            probe.bind(address)
    except OSError as exc:
        return exc
    return None


def _check_listen(host: str, port: int) -> None:
    """Fail with one clear sentence when a server about to start could not listen on ``host:port``."""
    if (problem := _cannot_listen(host, port)) is None:
        return
    in_use = problem.errno == errno.EADDRINUSE
    hint = (
        "Is another server (an earlier one, make run) on that port? Stop it, or choose another with --port."
        if in_use
        else "Check --host: an address or name of this machine (127.0.0.1, 0.0.0.0)."
    )
    _fail(
        f"Cannot listen on {host}:{port}: {problem.strerror or problem}. {hint}",
        code="address_in_use" if in_use else "invalid_option",
    )


@app.command(short_help="Run background tasks and the monthly payout schedule until interrupted.")
def worker(
    schedule: Annotated[
        bool,
        typer.Option(
            "--schedule/--no-schedule",
            help="Also run the monthly payout schedule, PayPal polling and housekeeping. Extra workers "
            "may use --no-schedule; several schedules at once are safe too.",
        ),
    ] = True,
    concurrency: Annotated[
        int,
        typer.Option(
            help="Task processes: N > 1 runs N django-tasks db_worker processes under this one, which forwards "
            "SIGTERM/SIGINT to them and restarts one that dies.",
            min=1,
            max=64,
        ),
    ] = 1,
    child_of: Annotated[int | None, typer.Option(hidden=True)] = None,
) -> None:
    """Run background tasks (django-tasks database backend) until interrupted, and the payout schedule: due
    monthly runs (missed ones included) at start and every PAYOUT_SCHEDULER_INTERVAL seconds, PayPal polling.
    Several workers (or --concurrency N) are safe: each task is claimed by one process (SELECT … FOR UPDATE
    SKIP LOCKED on PostgreSQL), and the payout schedule, which runs once per `apertur worker` whatever N, is
    kept to one payout per partner and period by a lease and unique constraints."""
    _setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.utils.autoreload import DJANGO_AUTORELOAD_ENV

    if child_of is not None:  # one of the processes `--concurrency N` starts
        _worker_child(child_of)
        return
    # With DEBUG and one process, db_worker restarts itself on code changes: this process then only watches a
    # copy of itself, which does the work (its env has DJANGO_AUTORELOAD_ENV=true). The schedule runs there,
    # once, and restarts with the new code too.
    reloading = concurrency == 1 and settings.DEBUG
    if schedule and (not reloading or os.environ.get(DJANGO_AUTORELOAD_ENV) == "true"):
        from apertur.core import housekeeping
        from apertur.payouts.schedule import start_in_background

        start_in_background()
        housekeeping.start_in_background()
    if concurrency == 1:
        call_command("db_worker")
    else:
        raise typer.Exit(_supervise_workers(concurrency))


def _worker_child(parent: int) -> None:
    """A task process of ``apertur worker --concurrency N``: dies with its parent (Linux), never reloads."""
    import signal
    import socket

    from django.core.management import call_command

    if sys.platform.startswith("linux"):
        import contextlib
        import ctypes

        with contextlib.suppress(AttributeError, OSError):  # without prctl, the parent still stops us
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl took effect
        raise typer.Exit(0)
    worker_id = f"{os.getpid()}@{socket.gethostname()}"[:64]
    call_command("db_worker", reload=False, worker_id=worker_id)


def _supervise_workers(n: int) -> int:
    """Start ``n`` task processes and keep them running until SIGTERM/SIGINT, which is forwarded to each (a
    second one is forwarded again: db_worker then abandons its current task). Each child has its own process
    group, so a terminal's Ctrl+C reaches only this process and each child is told exactly once. A child
    that dies is restarted after a second; one that keeps dying within 10 s of its start (5 times in a row)
    stops the whole worker with status 1 so that the service manager notices."""
    import logging
    import signal
    import subprocess
    import time

    log = logging.getLogger("apertur.worker")
    cmd = [sys.executable, "-m", "apertur", "worker", "--no-schedule", "--child-of", str(os.getpid())]
    stopping: list[int] = []

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(cmd, process_group=0)  # noqa: S603 - our own interpreter and module

    procs = [start() for _ in range(n)]
    started = [time.monotonic()] * n
    fast_failures = [0] * n
    log.info("apertur worker: %d task processes: %s", n, ", ".join(str(p.pid) for p in procs))

    def forward(signum: int, _frame: Any) -> None:
        stopping.append(signum)
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    while not stopping:
        for i, proc in enumerate(procs):
            code = proc.poll()
            if code is None or stopping:
                continue
            lived = time.monotonic() - started[i]
            fast_failures[i] = fast_failures[i] + 1 if lived < 10 else 0
            if fast_failures[i] >= 5:
                log.error("apertur worker: task process keeps exiting (status %s); stopping", code)
                status = 1
                forward(signal.SIGTERM, None)
                break
            log.warning("apertur worker: task process %d exited with status %s; restarting it", proc.pid, code)
            time.sleep(1)
            if not stopping:
                procs[i], started[i] = start(), time.monotonic()
                if stopping:  # the signal came while it was starting
                    procs[i].send_signal(signal.SIGTERM)
        time.sleep(0.2)
    for proc in procs:
        while proc.poll() is None:  # signals still arrive here (and are forwarded again)
            time.sleep(0.1)
    log.info("apertur worker: stopped")
    return status


# --- users ------------------------------------------------------------------------------------------


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Option(help="Login email.")],
    password: Annotated[str, typer.Option(help="Password (argon2-hashed).")],
    project: Annotated[str, typer.Option(help="Name of the first project.")] = "My project",
    plan: Annotated[str, typer.Option(help="Plan of the first project (Free, Pro, Business).")] = "Free",
    as_json: JsonFlag = False,
) -> None:
    """Create a customer with a confirmed email and a first project."""
    _setup()
    from apertur.projects.selectors import project_list
    from apertur.projects.services import create_customer

    with _errors(as_json):
        user = create_customer(
            email=email, password=password, project_name=project, plan_name=plan, email_confirmed=True
        )
    projects = [p.as_json() for p in project_list(owner=user)]
    data = {"id": user.public_id, "email": user.email, "projects": projects}
    _emit(
        data,
        as_json,
        lambda: out.print(
            f"Created [bold]{user.email}[/] ({user.public_id}) with project "
            + ", ".join(f"{p['name']} [{p['plan']}]" for p in projects)
        ),
    )


# --- partners ---------------------------------------------------------------------------------------


def _partner_json(partner: Any) -> dict[str, Any]:
    from apertur.referrals.services import default_link_url

    link = default_link_url(partner=partner)  # created on approval (partners.signals.partner_approved)
    return {"email": partner.user.email, "status": partner.status, "referral_link": link}


@partner_app.command(
    "create", short_help="Create a partner application (and its account if needed), optionally approved."
)
def partner_create(
    email: Annotated[str, typer.Option(help="Partner's login email.")],
    password: Annotated[str, typer.Option(help="Password.")],
    approve: Annotated[bool, typer.Option("--approve", help="Approve the application at once.")] = False,
    company: Annotated[str | None, typer.Option(help="Company or platform name.")] = None,
    website: Annotated[str | None, typer.Option(help="Company website.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a partner application (and its account if needed), optionally approved. Safe to run again: an
    existing partner is reported as it is (and approved with --approve if its application is pending)."""
    _setup()
    from django.db import transaction

    from apertur.accounts.models import User, normalize_email
    from apertur.accounts.services import create_user
    from apertur.partners import services
    from apertur.partners.models import ExpectedCustomers, Partner, PartnerStatus

    address = normalize_email(email)
    domain = address.rpartition("@")[2] or "example.com"
    with _errors(as_json), transaction.atomic():
        user = User.objects.filter(email=address).first()
        if user is None:
            user = create_user(email=address, password=password, email_confirmed=True)
        elif not user.check_password(password):
            _fail(
                f"{address} already has an account with a different password.",
                code="email_taken",
                as_json=as_json,
            )
        partner = Partner.objects.filter(user=user).first() or services.apply(
            user=user,
            company_name=company or f"{domain} partner",
            website=website or f"https://{domain}",
            use_case="Integrates Apertur through OAuth (created from the command line).",
            expected_customers=ExpectedCustomers.UP_TO_100,
            awaits_review=not approve,  # approved below, in this transaction: nothing waits for review
        )
        if approve and partner.status == PartnerStatus.PENDING:
            partner = services.approve(partner=partner, reviewer=None)
        data = _partner_json(partner)
    _emit(
        data,
        as_json,
        lambda: out.print(
            f"Partner [bold]{data['email']}[/]: {data['status']}"
            + (f", referral link {data['referral_link']}" if data["referral_link"] else "")
        ),
    )


@partner_app.command("balance")
def partner_balance(
    email: Annotated[str, typer.Option(help="The partner's email.")],
    as_json: JsonFlag = False,
) -> None:
    """Commission balance in CAD cents: pending, eligible, carried, paid, lifetime.

    The table also shows the next payout run (its date, whether it is late) and the balance eligible by it."""
    _setup()
    from apertur.commissions.selectors import balance_and_next_payout
    from apertur.core.clock import BUSINESS_TZ
    from apertur.core.money import format_cents
    from apertur.partners.selectors import partner_by_email

    partner = partner_by_email(email=email)
    if partner is None:
        _fail(f"No partner with email {email}.", code="partner_not_found", as_json=as_json)
    ledger, estimate = balance_and_next_payout(partner=partner)
    # The JSON is the fixed balance (ARCHITECTURE 6); the next run, late or not, is told to people only.
    data = ledger.as_json()

    def human() -> None:
        table = Table(title=f"Commission balance of {partner.user.email}", show_header=False)
        for key, cents in data.items():
            table.add_row(key.removesuffix("_cents"), format_cents(cents))
        when = f"{estimate.run_at.astimezone(BUSINESS_TZ):%A %-d %B %Y, %H:%M} (Toronto)"
        table.add_row("next run", f"{when}: late, sent as soon as it runs" if estimate.late else when)
        table.add_row("next run eligible", format_cents(estimate.eligible_cents))
        out.print(table)

    _emit(data, as_json, human)


# --- OAuth apps -------------------------------------------------------------------------------------


@app_app.command("create")
def app_create(
    partner_email: Annotated[str, typer.Option("--partner-email", help="The approved partner's email.")],
    name: Annotated[str, typer.Option(help="App name shown on the consent page.")],
    redirect_uri: Annotated[list[str], typer.Option("--redirect-uri", help="Redirect URI (repeatable).")],
    allowed_domain: Annotated[
        list[str] | None, typer.Option("--allowed-domain", help="Allowed domain pattern (repeatable).")
    ] = None,
    website: Annotated[str, typer.Option(help="App website.")] = "",
    description: Annotated[str, typer.Option(help="App description.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Register an OAuth app. The client secret is printed once; only its hash is stored."""
    _setup()
    from apertur.oauth.services import create_app
    from apertur.partners.selectors import partner_by_email

    partner = partner_by_email(email=partner_email)
    if partner is None:
        _fail(f"No partner with email {partner_email}.", code="partner_not_found", as_json=as_json)
    with _errors(as_json):
        created = create_app(
            partner=partner,
            name=name,
            redirect_uris=redirect_uri,
            allowed_domains=allowed_domain or [],
            website=website,
            description=description,
            budgeted=False,  # an operator's command, not a partner's portal
        )
    data = {
        "client_id": created.app.client_id,
        "client_secret": created.client_secret,
        "public_key": created.public_key,
        "test_public_key": created.test_public_key,
    }

    def human() -> None:
        table = Table(title=f"OAuth app {created.app.name}", show_header=False)
        for key, value in data.items():
            table.add_row(key, value)
        out.print(table)
        out.print("[yellow]Store the client secret now: it is not shown again.[/]")

    _emit(data, as_json, human)


# --- mail -------------------------------------------------------------------------------------------


@mail_app.command("list")
def mail_list(
    to: Annotated[str, typer.Option(help="Recipient email.")],
    limit: Annotated[int, typer.Option(help="At most this many messages.", min=1)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Messages sent to an address, newest first (development mail folder)."""
    _setup()
    from apertur.core.clock import BUSINESS_TZ
    from apertur.core.mail import stored_messages

    messages = stored_messages(to=to, limit=limit)
    data = {"to": to.strip().lower(), "messages": [m.as_json() for m in messages]}

    def human() -> None:
        if not messages:
            out.print(f"No messages to {to}.")
        for m in messages:
            out.rule(f"{m.subject} · {m.sent_at.astimezone(BUSINESS_TZ):%Y-%m-%d %H:%M:%S %Z}")
            # As written: the mail's own line breaks, and a link longer than the terminal left whole to click.
            out.print(m.text, highlight=False, markup=False, soft_wrap=True)

    _emit(data, as_json, human)


# --- billing ----------------------------------------------------------------------------------------


def _http_client() -> Any:
    """The HTTP client ``billing simulate`` posts with (a seam for tests)."""
    import httpx

    return httpx.Client(timeout=15.0)


def _server_error(response: Any) -> tuple[str, str]:
    try:
        error = response.json()["error"]
        return str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        # Not the webhook's JSON (a proxy, a 404 page…): the status line says enough.
        return "server_error", f"HTTP {response.status_code} {response.reason_phrase}".strip()


@billing_app.command(
    "simulate", short_help="Post Stripe-signed billing events to a running server's POST /webhooks/stripe."
)
def billing_simulate(
    email: Annotated[str, typer.Option(help="The customer's email (the invoices' customer_email).")],
    plan: Annotated[str, typer.Option(help="Plan name (Pro, Business): the price's lookup_key and amount.")],
    months: Annotated[int, typer.Option(help="Number of monthly invoices paid.", min=1, max=120)] = 1,
    start: Annotated[
        str | None,
        typer.Option(help="Date of the subscription and first payment, YYYY-MM-DD (default: the last is today)."),
    ] = None,
    refund: Annotated[
        list[str] | None,
        typer.Option(
            "--refund",
            help="AMOUNT_CENTS@YYYY-MM-DD: refund the latest payment made on or before that date (repeatable).",
        ),
    ] = None,
    currency: Annotated[str, typer.Option(help="Currency of the invoices (ISO code).")] = "cad",
    exchange_rate: Annotated[
        str | None,
        typer.Option(
            "--exchange-rate",
            help="CAD per unit of --currency, sent as the charge's balance transaction rate "
            "(default: the server's rate table).",
        ),
    ] = None,
    base_url: Annotated[
        str | None, typer.Option("--base-url", help="The running server (default: APERTUR_BASE_URL).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Post Stripe-signed events to a running server's POST /webhooks/stripe: a subscription (lookup_key =
    the plan), one paid invoice a month at the plan's price, and refunds (charge.refunded). They are signed
    with STRIPE_WEBHOOK_SECRET, which must be the server's. Events happen at noon, America/Toronto."""
    _setup()
    import datetime as dt
    from decimal import Decimal

    import httpx
    from django.conf import settings

    from apertur.accounts.models import User, normalize_email
    from apertur.core import clock
    from apertur.integrations.stripe import events
    from apertur.integrations.stripe.simulate import RefundSpec, add_months, history
    from apertur.projects.selectors import plan_by_name

    secret = settings.STRIPE_WEBHOOK_SECRET
    if not secret:
        _fail("STRIPE_WEBHOOK_SECRET is empty: set it to the server's webhook secret.", as_json=as_json)
    if not (len(currency) == 3 and currency.isalpha()):
        _fail(f"{currency!r} is not a currency code like cad or usd.", code="invalid_currency", as_json=as_json)
    try:
        refunds = [RefundSpec.parse(value) for value in refund or []]
    except ValueError as exc:
        _fail(str(exc), code="invalid_option", as_json=as_json)
    try:
        first = dt.date.fromisoformat(start) if start else add_months(clock.business_date(), -(months - 1))
    except ValueError as exc:
        _fail(f"--start {start!r} is not a date like 2026-03-01 ({exc}).", code="invalid_option", as_json=as_json)
    if exchange_rate is not None:
        # Checked here: the server would store every invoice carrying a bad rate as failed, for good.
        try:
            rate = Decimal(exchange_rate)
        except ArithmeticError:
            rate = Decimal(0)
        if not (rate.is_finite() and rate > 0):
            _fail(
                f"--exchange-rate {exchange_rate!r} is not a positive number (CAD per unit of {currency}, "
                "like 1.3712).",
                code="invalid_option",
                as_json=as_json,
            )
    # A database not migrated yet raises DatabaseError here: _main answers it, as for every command.
    with _errors(as_json):
        found = plan_by_name(plan)
    customer = User.objects.filter(email=normalize_email(email)).first()
    try:
        stream = history(
            email=email,
            plan=found.name,
            price_cents=found.price_cents,
            months=months,
            start=first,
            refunds=refunds,
            currency=currency.lower(),
            exchange_rate=exchange_rate,
            user_public_id=customer.public_id if customer else None,
            end=None if start else clock.business_date(),
        )
    except ValueError as exc:
        _fail(str(exc), code="invalid_refund", as_json=as_json)

    url = (base_url or settings.APERTUR_BASE_URL).rstrip("/") + "/webhooks/stripe"
    rows: list[dict[str, str]] = []
    with _http_client() as client:
        for evt in stream:
            body = events.encode(evt)
            done = f" ({len(rows)} of {len(stream)} events were delivered before)" if rows else ""
            try:
                response = client.post(
                    url,
                    content=body,
                    headers={"Content-Type": "application/json", "Stripe-Signature": events.sign(body, secret)},
                )
            except httpx.HTTPError as exc:
                _fail(
                    f"Cannot reach {url}: {exc or type(exc).__name__}. Is the server running (make run)?{done}",
                    code="server_unreachable",
                    as_json=as_json,
                )
            if response.status_code >= 400:
                code, message = _server_error(response)
                hint = (
                    " The server's STRIPE_WEBHOOK_SECRET differs from this one." if code == "invalid_signature" else ""
                )
                _fail(
                    f"{url} answered {response.status_code} to {evt['type']} {evt['id']}: {message}{hint}{done}",
                    code=code,
                    as_json=as_json,
                )
            try:
                answer = response.json()
                status, detail = str(answer["status"]), str(answer.get("detail", ""))
            except (ValueError, KeyError, TypeError):
                _fail(f"{url} did not answer like Apertur's webhook: {response.text[:200]!r}{done}", as_json=as_json)
            if answer.get("duplicate"):
                detail = f"duplicate of an earlier delivery: {detail}"
            rows.append({"event_id": evt["id"], "type": evt["type"], "status": status, "detail": detail})

    def human() -> None:
        table = Table(title=f"Stripe events for {email} → {url}")
        for column in ("event", "type", "status", "detail"):
            table.add_column(column)
        for row in rows:
            table.add_row(row["event_id"], row["type"], row["status"], row["detail"])
        out.print(table)

    _emit({"url": url, "email": email, "plan": found.name, "events": rows}, as_json, human)


#: ``billing import`` tells a person how far it is every this many events (not with ``--json``).
IMPORT_PROGRESS_EVERY = 1000


@billing_app.command(
    "import", short_help="Backfill from exported Stripe events (JSON Lines; trusted: signatures are not checked)."
)
def billing_import(
    file: Annotated[Path, typer.Argument(help="Exported Stripe events, one JSON event object per line.")],
    test_mode: Annotated[
        bool,
        typer.Option(
            "--test-mode",
            help="The export is of Stripe's test mode (livemode false): for development. Without it only live-mode "
            "events are imported.",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Backfill from exported Stripe events (JSON Lines) through the webhook's intake, oldest first. The
    file is trusted: signatures are not checked, so import only exports of your own Stripe account.
    Every event must be of live mode (or, with --test-mode, of test mode): otherwise nothing is imported.
    Replayed events change nothing; malformed lines are reported by number and skipped."""
    _setup()
    from apertur.integrations.stripe import services as intake

    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"Cannot read {file}: {exc}", code="unreadable_file", as_json=as_json)
    parsed: list[tuple[int, dict[str, Any]]] = []
    malformed: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            parsed.append((number, intake.parse(line)))
        except ValueError as exc:  # json.JSONDecodeError included
            malformed.append({"line": number, "error": str(exc)})
    if malformed and not parsed:
        first = malformed[0]
        _fail(
            f"No event could be read from {file}: {len(malformed)} malformed line(s), the first at line "
            f"{first['line']}: {first['error']}. Nothing was imported.",
            code="no_events",
            as_json=as_json,
        )
    # Unsigned, the file cannot say which Stripe endpoint it came from: its events' own ``livemode`` must say the
    # mode asked for, or test payments would be recorded as real ones (and earn real commissions). All or nothing.
    live = not test_mode
    other_mode = [number for number, evt in parsed if evt.get("livemode") is not live]
    if other_mode:
        listed = ", ".join(map(str, other_mode[:20])) + (", …" if len(other_mode) > 20 else "")
        wanted, other = ("test", "live") if test_mode else ("live", "test")
        _fail(
            f"{len(other_mode)} event(s) in {file} are not {wanted}-mode events (livemode "
            f"{'false' if test_mode else 'true'}), at line(s) {listed}: nothing was imported. "
            + (
                "Import a test-mode export with --test-mode."
                if not test_mode
                else "Without --test-mode a live-mode export is imported."
            )
            + f" A file mixing {wanted}- and {other}-mode events cannot be imported.",
            code="livemode_mismatch",
            as_json=as_json,
        )
    counts = {"processed": 0, "waiting": 0, "ignored": 0, "failed": 0, "duplicate": 0}
    # Oldest first, as Stripe sent them (exports list newest first); any order would end the same.
    for done, (_, evt) in enumerate(sorted(parsed, key=lambda item: (int(item[1]["created"]), item[0])), start=1):
        outcome = intake.receive(evt)
        key = "duplicate" if outcome.duplicate else outcome.status
        counts[key] = counts.get(key, 0) + 1
        if not as_json and done % IMPORT_PROGRESS_EVERY == 0 and done < len(parsed):
            # A few ms an event: a big export is minutes of work, which a person sees go by.
            err.print(f"{done} of {len(parsed)} event(s) imported", highlight=False)
    data = {"file": str(file), "events": len(parsed), "counts": counts, "malformed": malformed}

    def human() -> None:
        table = Table(title=f"Imported {len(parsed)} event(s) from {file}", show_header=False)
        for status, n in counts.items():
            table.add_row(status, str(n))
        table.add_row("malformed (skipped)", str(len(malformed)))
        out.print(table)
        for bad in malformed:
            err.print(f"[yellow]line {bad['line']}:[/] {bad['error']}", highlight=False)

    _emit(data, as_json, human)


@billing_app.command(
    "retry", short_help="Apply again a stored Stripe event that was not applied (given up, ignored or failed)."
)
def billing_retry(
    event_id: Annotated[str, typer.Argument(help="The Stripe event id (evt_…) to apply again.")],
    customer_email: Annotated[
        str | None,
        typer.Option(
            "--customer-email",
            help="First link the Stripe customer the event names to this Apertur user, and apply again every "
            "event given up about that customer.",
        ),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="Link without asking (required with --json): a link cannot be undone.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Apply again a stored Stripe event that was not applied: given up after 7 days of waiting (the staff email
    lists them), ignored or failed. With --customer-email it says what it will link and asks first. Exit status 0
    when the event is applied now, 1 when it still is not (the output says why) or the retry was refused."""
    _setup()
    from apertur.integrations.stripe import services as intake

    if customer_email is not None and not yes:
        with _errors(as_json):
            plan = intake.preview_link(event_id=event_id, customer_email=customer_email)
        what = (
            f"Stripe customer {plan.customer_id} ({plan.stripe_email or 'no email on the event'}) is "
            + ("already" if plan.already_linked else "to be")
            + f" linked to the Apertur user {plan.user_email}; {event_id} and {plan.others_given_up} other event(s) "
            "given up about that customer will be applied to that user's projects. A link cannot be undone."
        )
        if as_json:
            _fail(f"{what} Add --yes to go ahead.", code="confirmation_required", as_json=True)
        out.print(what, highlight=False)
        if not typer.confirm("Link and apply?", default=False):
            _fail("Nothing was linked or applied.", code="aborted")
    with _errors(as_json):
        done = intake.retry_event(event_id=event_id, customer_email=customer_email)
    data = done.as_json()
    asked = next(e for e in data["events"] if e["id"] == event_id)
    data["applied"] = asked["status"] == "processed"

    def human() -> None:
        if done.linked_customer:
            out.print(f"Linked Stripe customer {done.linked_customer} to {customer_email}.")
        for event in data["events"]:
            now = "applied" if event["status"] == "processed" else f"not applied ({event['status']})"
            out.print(f"{event['id']}: {event['previous_status']} → {now}: {event['detail']}", highlight=False)
        if done.waiting_applied:
            out.print(f"{done.waiting_applied} waiting event(s) applied after them.")

    _emit(data, as_json, human)
    if not data["applied"]:
        raise typer.Exit(1)


# --- commissions ------------------------------------------------------------------------------------


@commissions_app.command(
    "statements", short_help="Email each partner their statement for a month (once per partner and month)."
)
def commissions_statements(
    month: Annotated[
        str | None, typer.Option(help="The month, YYYY-MM (default: the previous month in America/Toronto).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Email each approved partner with commissions on payments made that month a statement: earned,
    reversed, net, and their balance on the day it is sent. Sent once per partner and month; running it again
    reports already_sent."""
    _setup()
    from apertur.commissions.notices import month_bounds, parse_month, previous_month, send_statements
    from apertur.core import clock
    from apertur.core.money import format_cents

    try:
        first = parse_month(month) if month else previous_month()
    except ValueError as exc:
        _fail(str(exc), code="invalid_month", as_json=as_json)
    end = month_bounds(first)[1]
    if end > clock.now():
        # Sent once per partner and month: one sent now would leave out the rest of the month for good.
        _fail(
            f"'{first:%Y-%m}' is not over yet (it ends {end:%Y-%m-%d} 00:00 Toronto): a statement is sent once per "
            "partner and month, so send it once the month is over.",
            code="invalid_month",
            as_json=as_json,
        )
    results = send_statements(month=first)
    data = {"month": f"{first:%Y-%m}", "statements": [r.as_json() for r in results]}

    def human() -> None:
        table = Table(title=f"Commission statements for {first:%B %Y}")
        for column in ("partner", "status", "payments", "net"):
            table.add_column(column)
        for r in results:
            table.add_row(r.email, r.status, str(r.payments), format_cents(r.net_cents))
        out.print(table)

    _emit(data, as_json, human)


# --- payouts ----------------------------------------------------------------------------------------

_REASONS = {
    "paid": "sent to PayPal",
    "would_pay": "would be sent",
    "would_retry": "would retry (same batch id)",
    "retry_pending": "PayPal unreachable: retried with the same batch id",
    "already_paid": "already sent this period",
    "failed": "failed: the money is back in the balance",
    "under_minimum": "under $50.00 CAD: carried forward",
    "not_approved": "partner not approved",
    "no_verified_paypal_email": "no verified PayPal email",
    "payouts_held": "payouts held by staff",
    "error": "error (see the log); retried by the next run",
    "nothing_due": "nothing earned to pay",
    "needs_review": "needs review: first sent over 25 days ago, never sent again (apertur payouts resolve)",
    "paypal_refused_address": "PayPal refused the partner's address: waits for a new one",
}


@payouts_app.command(
    "run", short_help="Pay partners' eligible commissions for a period by PayPal (or preview with --dry-run)."
)
def payouts_run(
    period: Annotated[
        str | None,
        typer.Option(
            help="YYYY-MM: the run dated the 15th of that month, 09:00 Toronto (default: the latest run that is due, "
            "this month's from the 15th at 09:00, else last month's; with --dry-run, this month's)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be paid; write and send nothing.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Pay every partner their eligible commissions for a period by PayPal (or preview it with --dry-run). Safe
    to run again, and at the same time as the scheduler: one payout per partner and period, ever. Exit status 3
    when the run leaves payouts to be sent again (PayPal not reached, or an error on our side): run it again."""
    _setup()
    from apertur.commissions.selectors import last_payout_run_at
    from apertur.core import clock
    from apertur.core.money import format_cents
    from apertur.payouts import schedule, services

    # A real run defaults to the run that is due (a run refuses to start before its date); a preview to this
    # month's, due or not.
    chosen = period or f"{(clock.business_now() if dry_run else last_payout_run_at()):%Y-%m}"
    with _errors(as_json):
        when = services.run_at(chosen)
        if dry_run:
            decisions = services.run(period=chosen, dry_run=True)
        else:
            # A run over many partners takes a while (10,000: about 40 s): a person sees each PayPal batch go.
            def progress(done: int, total: int) -> None:
                err.print(f"Payouts {chosen}: {done} of {total} partner(s) done", highlight=False)

            decisions = (
                schedule.run_period(period=chosen, trigger="cli", lease=False, progress=None if as_json else progress)
                or []
            )
    summary = schedule.summarize(decisions)
    # What this run left to be sent again (its own rows: a scheduler sending at the same time is not counted).
    waiting = sum(1 for d in decisions if d.reason in {services.Reason.RETRY, services.Reason.ERROR})
    data = {
        "period": chosen,
        "run_at": when.isoformat(),
        "dry_run": dry_run,
        "waiting": waiting,
        "summary": summary,
        "payouts": [d.as_json() for d in decisions],
    }

    def human() -> None:
        title = f"{'Dry run: ' if dry_run else ''}payouts for {chosen} (dated {when:%Y-%m-%d %H:%M} Toronto)"
        table = Table(title=title)
        for column in ("partner", "PayPal", "amount", "status", "why", "batch id", "carried"):
            table.add_column(column, justify="right" if column in {"amount", "carried"} else "left", overflow="fold")
        for d in decisions:
            table.add_row(
                d.partner_email,
                d.paypal_email or "—",
                format_cents(d.amount_cents) if d.amount_cents else "—",
                d.status or "—",
                _REASONS.get(d.reason, d.reason),
                d.sender_batch_id or "—",
                format_cents(d.carried_cents) if d.carried_cents else "—",
            )
        out.print(table)
        total = int(summary["paid_cents"])
        out.print(f"{len(decisions)} partner(s); sent {format_cents(total)}" if not dry_run else "Nothing was written.")

    _emit(data, as_json, human)
    if waiting:
        # Exit status 3, not 1: the output above is the run's, not an error object (a cron job or a service
        # manager sees that something is left; the worker's schedule also retries it).
        err.print(
            f"[yellow]The {chosen} run is not finished:[/] {waiting} payout(s) wait to be sent again (see why above). "
            "The worker retries them; or run this command again.",
            highlight=False,
        )
        raise typer.Exit(3)


@payouts_app.command("reconcile", short_help="Ask PayPal about unsettled payouts now and apply waiting webhook events.")
def payouts_reconcile(as_json: JsonFlag = False) -> None:
    """Ask PayPal about every payout it has not settled and apply webhook events still waiting (the worker
    does this every PAYOUT_SCHEDULER_INTERVAL seconds)."""
    _setup()
    from apertur.payouts import reconcile

    poll = reconcile.poll_open()
    applied = reconcile.process_pending_events()
    data = {**poll.as_json(), "events_applied": applied}

    def human() -> None:
        out.print(f"Checked {poll.checked} payout(s) with PayPal; {applied} waiting event(s) applied.")
        for change in poll.changed:
            out.print(
                f"  {change['sender_item_id']} (partner {change['partner_id']}, batch {change['sender_batch_id']}): "
                f"{change['from']} → {change['to']}"
            )
        for problem in poll.errors:
            err.print(f"[yellow]not reached:[/] {problem}", highlight=False)

    _emit(data, as_json, human)


@payouts_app.command(
    "resolve", short_help="Resolve a payout in review: record the batch PayPal has, or give the money back."
)
def payouts_resolve(
    item: Annotated[str, typer.Option("--item", help="The payout's sender_item_id (aptr-<partner>-<period>-<n>).")],
    paypal_batch: Annotated[
        str | None, typer.Option("--paypal-batch", help="PayPal has it: the payout_batch_id PayPal shows.")
    ] = None,
    not_paid: Annotated[bool, typer.Option("--not-paid", help="PayPal has no such batch: money back.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Resolve a payout in review (its batch was first sent over 25 days ago and never confirmed, so it is
    never sent again): after looking in PayPal, record the batch PayPal has, or give the money back."""
    _setup()
    from apertur.payouts import services
    from apertur.payouts.models import Payout

    if bool(paypal_batch) == not_paid:
        _fail("Give exactly one of --paypal-batch ID and --not-paid.", code="invalid_option", as_json=as_json)
    payout = Payout.objects.filter(sender_item_id=item).first()
    if payout is None:
        _fail(f"No payout {item}.", code="payout_not_found", as_json=as_json)
    with _errors(as_json):
        done = services.resolve_review(payout=payout, actor=None, paypal_batch_id=paypal_batch or "", paid=not not_paid)
    data = {
        "payouts": [
            {"sender_item_id": p.sender_item_id, "status": str(p.status), "paypal_batch_id": p.paypal_batch_id}
            for p in done
        ]
    }

    def human() -> None:
        for row in data["payouts"]:
            out.print(f"{row['sender_item_id']}: {row['status']}")

    _emit(data, as_json, human)


# --- demo -------------------------------------------------------------------------------------------


@app.command()
def demo(as_json: JsonFlag = False) -> None:
    """Create (idempotently) the demo customer, partner and OAuth app, and print the logins."""
    _setup()
    from apertur.demo import ensure_demo

    with _errors(as_json):
        data = ensure_demo()

    def human() -> None:
        table = Table(title="Apertur demo", show_header=True)
        table.add_column("who")
        table.add_column("email")
        table.add_column("password")
        table.add_row("customer", data["user"]["email"], data["user"]["password"])
        table.add_row("partner", data["partner"]["email"], data["partner"]["password"])
        table.add_row("staff", data["staff"]["email"], data["staff"]["password"])
        out.print(table)
        out.print(f"Apertur: {data['base_url']}  ·  log in at {data['base_url']}/login")
        out.print(f"Demo app client_id {data['app']['client_id']}  public key {data['app']['public_key']}")

    _emit(data, as_json, human)


@app.command("partner-site")
def partner_site(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8001,
) -> None:
    """Serve the demo partner site (examples/partner_site) with the demo OAuth app's credentials."""
    _setup()
    from pathlib import Path

    import apertur
    from apertur.demo import ensure_demo

    site = Path(apertur.__file__).resolve().parent.parent / "examples" / "partner_site" / "app.py"
    if not site.is_file():
        _fail(f"The demo partner site is not at {site} (it ships with the source tree, not the wheel).")
    _check_listen(host, port)  # before the site, whose answer is a traceback
    site_url = (os.environ.get("PARTNER_SITE_URL") or f"http://partner.localhost:{port}").rstrip("/")
    with _errors(False):
        demo_app = ensure_demo(site_url=site_url)
    env = {
        **os.environ,
        "APERTUR_BASE_URL": demo_app["base_url"],
        "APERTUR_CLIENT_ID": demo_app["app"]["client_id"],
        "APERTUR_CLIENT_SECRET": demo_app["app"]["client_secret"],
        "APERTUR_PUBLIC_KEY": demo_app["app"]["public_key"],
        "PARTNER_SITE_URL": site_url,
    }
    if f"{site_url}/callback" not in demo_app["app"]["redirect_uris"]:
        err.print(
            f"[yellow]note:[/] {site_url}/callback is not a redirect URI of the demo app (its allowed domains are "
            f"{', '.join(demo_app['app']['allowed_domains'])}): Connect will be refused; leave PARTNER_SITE_URL unset."
        )
    sys.stdout.flush()
    args = [sys.executable, str(site), "--host", host, "--port", str(port)]
    os.execve(sys.executable, args, env)  # noqa: S606 - replaces this process with the site


@app.command("paypal-emulator", short_help="Serve a local PayPal Payouts emulator (no database needed).")
def paypal_emulator(
    host: Annotated[str, typer.Option(help="Interface to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8002,
    webhook_url: Annotated[
        str | None,
        typer.Option(help="POST PayPal-shaped webhook events here (e.g. http://127.0.0.1:8000/webhooks/paypal)."),
    ] = None,
    advance_after: Annotated[
        float | None,
        typer.Option(help="Settle a batch's items this many seconds after it is created (on the next read)."),
    ] = None,
    webhook_id: Annotated[str | None, typer.Option(help="The webhook id deliveries are signed for.")] = None,
) -> None:
    """Serve the local PayPal Payouts emulator (PayPal's endpoints and JSON, in memory, with failure switches
    under /emulator/) until interrupted. Accepts PAYPAL_CLIENT_ID/PAYPAL_CLIENT_SECRET when set, else its
    default credentials. No database needed."""
    from apertur.integrations.paypal import emulator

    client_id, client_secret = emulator.credentials_from_env()
    shown_secret = client_secret if client_secret == emulator.DEFAULT_CLIENT_SECRET else "(PAYPAL_CLIENT_SECRET)"
    try:
        server = emulator.make_server(host, port, client_id=client_id, client_secret=client_secret, verbose=True)
    except OSError as exc:
        _fail(f"Cannot listen on {host}:{port}: {exc}", code="address_in_use")
    switches: dict[str, Any] = {}
    if webhook_url:
        switches["webhook_url"] = webhook_url
    if advance_after is not None:
        switches["advance_after_seconds"] = advance_after
    if webhook_id:
        switches["webhook_id"] = webhook_id
    if switches:
        status, answer = server.emulator.configure(switches)
        if status != 200:
            server.server_close()
            _fail(str(answer.get("message", answer)), code="invalid_option")
    out.print(
        f"PayPal emulator on {server.base_url} (controls under /emulator/)\n"
        f"PAYPAL_API_BASE={server.base_url}\n"
        f"PAYPAL_CLIENT_ID={client_id}\n"
        f"PAYPAL_CLIENT_SECRET={shown_secret}\n"
        f"webhook_id {emulator.DEFAULT_WEBHOOK_ID}",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    sys.stdout.flush()
    emulator.run_until_interrupted(server)


def main() -> None:
    """The console script. A database that is missing or not migrated is one clear error (any command), not a
    traceback of the first query."""
    as_json = "--json" in sys.argv[1:]
    try:
        if (bad := _not_utf8(sys.argv[1:])) is not None:
            _fail(
                f"{bad} is not UTF-8 text: set the terminal's (or the script's) encoding to UTF-8.",
                code="usage_error",
                as_json=as_json,
                status=2,
            )
        _main(as_json=as_json)
    except typer.Exit as done:  # raised by _fail outside click, which would otherwise have turned it into a status
        sys.exit(done.exit_code)


def _not_utf8(args: list[str]) -> str | None:
    """The first argument with bytes that are not UTF-8 (Python keeps them as lone surrogates, which no query or
    JSON can carry), shown with those bytes escaped; a file that exists under such a name is fine."""
    for arg in args:
        if any("\udc80" <= char <= "\udcff" for char in arg) and not os.path.exists(arg):
            return "'" + arg.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace") + "'"
    return None


def _main(*, as_json: bool) -> None:
    from django.db import DatabaseError

    try:
        if not as_json:
            app(prog_name="apertur")
            return
        # With --json, click's own errors (an unknown option, a missing or bad value) are the one JSON object on
        # stdout too: a script reads stdout whatever went wrong. Exit status 2, click's for usage errors.
        try:
            status = app(prog_name="apertur", standalone_mode=False)
        except typer.TyperException as exc:  # click's ClickException (typer vendors click)
            code = int(getattr(exc, "exit_code", 1))
            message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            # click gives usage errors (UsageError and its subclasses) exit status 2
            _fail(message, code="usage_error" if code == 2 else "error", as_json=True, status=code)
        except typer.Abort:
            _fail("Aborted.", code="aborted", as_json=True, status=1)
        sys.exit(status if isinstance(status, int) else 0)
    except DatabaseError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        _fail(
            f"The database is not ready ({first}). Run `apertur migrate` first, and check DATABASE_URL.",
            code="database_not_ready",
            as_json=as_json,
        )


if __name__ == "__main__":
    main()
