"""Apertur beyond one process (docs/deploy.md): two `apertur serve` processes (two granian workers each) and two
`apertur worker` processes (one of them with ``--concurrency 2``) on one PostgreSQL database and one Redis, on
loopback. Things that must happen once still happen once:

1. the same refresh token sent to both servers at once by 8 clients: one success, the rest ``invalid_grant``,
   and the reuse revokes the whole family (docs/oauth.md, "Refreshing the access token");
2. webhook deliveries queued by changes made through both servers reach the receiver once each, although
   three task processes poll the queue;
3. partners with eligible commissions are paid once (one payout each, its item in exactly one PayPal batch)
   although both workers' payout schedules tick at start, at the same moment as a person's
   ``apertur payouts run``.

PostgreSQL only (skipped on SQLite, a failure under CI=true through the PostgreSQL run); Redis is required too
(skipped when unreachable, a failure under CI=true). The processes use their own database ``apertur_mp_<pid>``
(dropped at the end) and an empty Redis database (flushed before and after)."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from apertur.integrations.paypal.emulator import Running, running
from apertur.webhooks.tests.test_services import Receiver

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
RACERS = 8  # concurrent refreshes of one token per round
ROUNDS = 3
SESSIONS = 8  # upload sessions created through the API (one webhook event each)
PARTNERS = 3

SETUP = """
import datetime as dt, json, sys
import django
django.setup()
from django.conf import settings
settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # nobody logs in with a password here
from apertur.commissions.selectors import last_payout_run_at
from apertur.core import clock
from apertur.integrations.stripe import events, services as intake
from apertur.oauth import tokens as token_store
from apertur.projects.selectors import plan_by_name
from apertur.projects.services import create_project
from apertur.referrals.models import Attribution, AttributionSource
from apertur.testing import make_app, make_partner, make_user
from apertur.webhooks import services as webhooks

receiver_url, rounds, partners = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
created = make_app()
customer = make_user("mp-customer@example.com")
project = create_project(owner=customer, name="Multi-process", plan=plan_by_name("Pro"))
scopes = ["plan:read", "project:read", "upload:create", "upload:read"]
connection = token_store.connect(app=created.app, project=project, user=customer, scopes=scopes)

def issue():
    access, refresh = token_store.new_access_token(), token_store.new_refresh_token()
    token_store.issue(connection=connection, scopes=scopes, livemode=True, access_token=access, refresh_token=refresh)
    return access, refresh

api_token = issue()[0]
cached_token = issue()[0]  # warmed in both servers' token caches, then revoked through one of them
families = [issue()[1] for _ in range(rounds + 1)]  # one token family per race, and one for the control
endpoint = webhooks.create_endpoint(project=project, url=receiver_url, events=["session.created"])

# Payments made 31 days before the last payout run date: their 30-day hold ended the day before that run, and
# they were made in the month before it, so that run (and no other) pays them.
run_at = last_payout_run_at(clock.now())
paid_at = run_at - dt.timedelta(days=31)
for i in range(partners):
    partner = make_partner(user=make_user(f"mp-partner{i}@example.com"))
    partner.paypal_email, partner.paypal_verified_at = f"mp-paypal{i}@example.com", paid_at
    partner.save()
    buyer = make_user(f"mp-buyer{i}@example.com")
    create_project(owner=buyer, name="Bought")
    Attribution.objects.create(
        customer=buyer, partner=partner, source=AttributionSource.REFERRAL, at=paid_at - dt.timedelta(days=1)
    )
    invoice = events.invoice_paid(
        customer=f"cus_mp_{i}", email=buyer.email, amount=80_000 + 1_000 * i, at=paid_at,
        invoice_id=f"in_mp_{i}", charge_id=f"ch_mp_{i}",
    )
    body = events.encode(invoice)
    outcome = intake.intake(body=body, signature=events.sign(body, settings.STRIPE_WEBHOOK_SECRET))
    assert outcome.status == "processed", outcome
print(json.dumps({
    "client_id": created.app.client_id, "client_secret": created.client_secret, "api_token": api_token,
    "cached_token": cached_token,
    "families": families, "webhook_secret": endpoint.secret, "period": f"{run_at.astimezone(clock.BUSINESS_TZ):%Y-%m}",
}))
"""


def _in_ci() -> bool:
    return os.environ.get("CI") == "true"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(what: str, ready: Callable[[], bool], *, timeout: float, explain: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{explain()}")
        time.sleep(0.2)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """An empty database of the local Redis (15 down to 8), flushed before and after."""
    import redis

    server = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=2)
    try:
        server.ping()
    except redis.RedisError as exc:
        if _in_ci():
            pytest.fail(f"Redis at {REDIS_HOST}:{REDIS_PORT} is required when CI=true: {exc}")
        pytest.skip(f"needs Redis at {REDIS_HOST}:{REDIS_PORT}")
    finally:
        server.close()
    number = next(
        (n for n in range(15, 7, -1) if redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=n).dbsize() == 0), 15
    )
    db = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=number)
    db.flushdb()
    try:
        yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{number}"
    finally:
        db.flushdb()
        db.close()


@pytest.fixture
def database_url(postgres_only: None) -> Iterator[str]:
    """A fresh PostgreSQL database for the processes, on the server the suite runs against."""
    import psycopg
    from django.conf import settings

    conf = settings.DATABASES["default"]
    name = f"apertur_mp_{os.getpid()}"
    auth = quote(conf["USER"] or "postgres") + (f":{quote(conf['PASSWORD'])}" if conf.get("PASSWORD") else "")
    server = f"postgres://{auth}@{conf['HOST'] or '127.0.0.1'}:{conf['PORT'] or 5432}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Fleet:
    """The processes of the test, each logging to its own file; stopped (then killed) in ``stop_all``."""

    tmp: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    signalled: set[str] = field(default_factory=set)

    def start(self, name: str, *args: str, stdout: Path | None = None) -> subprocess.Popen[bytes]:
        """``apertur ARGS`` with its output (or only stderr, when ``stdout`` names a file) in NAME.log."""
        exe = str(Path(sys.executable).with_name("apertur"))
        env = {**self.env, "APERTUR_VAR_DIR": str(self.tmp / f"var-{name}")}
        with (self.tmp / f"{name}.log").open("wb") as log, (stdout or Path(os.devnull)).open("wb") as out:
            proc = subprocess.Popen(
                [exe, *args],
                env=env,
                stdout=out if stdout else log,
                stderr=subprocess.STDOUT if stdout is None else log,
                start_new_session=True,
            )
        self.procs[name] = proc
        return proc

    def logs(self) -> str:
        parts = []
        for name in self.procs:
            text = (self.tmp / f"{name}.log").read_text(errors="replace")
            parts.append(f"--- {name} (last 3000 characters) ---\n{text[-3000:]}")
        return "\n".join(parts)

    def check_alive(self, *names: str) -> None:
        for name in names or tuple(self.procs):
            code = self.procs[name].poll()
            assert code is None, f"{name} exited with status {code}\n{self.logs()}"

    def terminate(self, name: str) -> None:
        """SIGTERM, once: a second one means "now" to db_worker."""
        if name not in self.signalled and self.procs[name].poll() is None:
            self.signalled.add(name)
            self.procs[name].send_signal(signal.SIGTERM)

    def stop(self, name: str, timeout: float = 20) -> int:
        proc = self.procs[name]
        self.terminate(name)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
            raise AssertionError(f"{name} did not stop on SIGTERM within {timeout} s\n{self.logs()}") from None

    def stop_all(self) -> None:
        for name in self.procs:
            self.terminate(name)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


class _Phases:
    def __init__(self) -> None:
        self.last = time.monotonic()
        self.laps: list[str] = []

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps.append(f"{name} {now - self.last:.1f} s")
        self.last = now

    def __str__(self) -> str:
        return "; ".join(self.laps)


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()  # type: ignore[arg-type]


def _refresh(base: str, token: str, app: dict[str, Any], http: httpx.Client | None = None) -> httpx.Response:
    body = {
        "grant_type": "refresh_token",
        "refresh_token": token,
        "client_id": app["client_id"],
        "client_secret": app["client_secret"],
    }
    return (http or httpx).post(f"{base}/oauth/token", data=body, timeout=20)


def _race_refresh(bases: list[str], token: str, app: dict[str, Any]) -> list[httpx.Response]:
    """``RACERS`` clients, each with a warm connection to one of the servers, send the token at once."""
    clients = [httpx.Client(base_url=bases[i % len(bases)], timeout=20) for i in range(RACERS)]
    for http in clients:
        http.get("/healthz").raise_for_status()
    barrier = threading.Barrier(RACERS, timeout=20)
    results: list[Any] = [None] * RACERS

    def go(i: int) -> None:
        try:
            barrier.wait()
            results[i] = _refresh(str(clients[i].base_url).rstrip("/"), token, app, clients[i])
        except Exception as exc:  # reported by the assertions below
            results[i] = exc

    threads = [threading.Thread(target=go, args=(i,)) for i in range(RACERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=40)
    for http in clients:
        http.close()
    assert all(isinstance(r, httpx.Response) for r in results), results
    return results


def test_two_servers_and_two_workers_do_everything_once(tmp_path: Path, database_url: str, redis_url: str) -> None:
    started = time.monotonic()
    receiver = Receiver()
    try:
        with running() as emu:
            # Items settle on the next read; the first PayPal calls take a second, so that the runs overlap.
            switches = {"advance_after_seconds": 0, "timeout_next_n": PARTNERS, "timeout_seconds": 1.0}
            httpx.post(f"{emu.base_url}/emulator/config", json=switches).raise_for_status()
            fleet = Fleet(tmp_path, _environment(tmp_path, database_url, redis_url, emu))
            try:
                _run_scenario(fleet, database_url, redis_url, emu, receiver, tmp_path)
            finally:
                fleet.stop_all()
    finally:
        receiver.close()
    print(f"\nmulti-process scenario: {time.monotonic() - started:.1f} s")


def _environment(tmp: Path, database_url: str, redis_url: str, emu: Running) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": "apertur-multiprocess-test-" + os.urandom(16).hex(),  # one key for every process
        "DEBUG": "0",
        "DJANGO_SETTINGS_MODULE": "apertur.config.settings",
        "APERTUR_MEDIA_DIR": str(tmp / "media"),
        "APERTUR_MAIL_DIR": str(tmp / "mail"),
        "WEBHOOKS_ALLOW_LOOPBACK": "1",
        "PAYPAL_API_BASE": emu.base_url,
        "PAYPAL_CLIENT_ID": emu.client_id,
        "PAYPAL_CLIENT_SECRET": emu.client_secret,
        "PAYOUT_SCHEDULER_INTERVAL": "1",
        "LOG_LEVEL": "INFO",
    }
    return env


def _run_scenario(fleet: Fleet, database_url: str, redis_url: str, emu: Running, receiver: Receiver, tmp: Path) -> None:
    env = {**fleet.env, "APERTUR_VAR_DIR": str(tmp / "var-setup")}
    clock = _Phases()
    exe = str(Path(sys.executable).with_name("apertur"))
    migrated = subprocess.run([exe, "migrate"], env=env, capture_output=True, timeout=120, text=True)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    ports = [_free_port(), _free_port()]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    for i, port in enumerate(ports):  # they boot while the setup script writes the data
        fleet.start(f"serve{i}", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2")
    setup = subprocess.run(
        [sys.executable, "-c", SETUP, receiver.url, str(ROUNDS), str(PARTNERS)],
        env=env,
        capture_output=True,
        timeout=120,
        text=True,
    )
    assert setup.returncode == 0, setup.stdout + setup.stderr
    world = json.loads(setup.stdout.strip().splitlines()[-1])
    clock.lap("migrate + setup (servers booting)")
    receiver.secret = world["webhook_secret"]
    period = world["period"]
    assert _rows(database_url, "select count(*) from payouts_payout") == [(0,)]
    # Both schedules tick as their worker starts; a person runs the same period by hand at the same moment.
    fleet.start("worker0", "worker", "--concurrency", "2")
    fleet.start("worker1", "worker")
    cli = fleet.start("payouts-cli", "payouts", "run", "--period", period, "--json", stdout=tmp / "payouts-cli.json")

    def healthy() -> bool:
        fleet.check_alive("serve0", "serve1", "worker0", "worker1")
        try:
            return all(httpx.get(f"{b}/healthz", timeout=2).status_code == 200 for b in bases)
        except httpx.HTTPError:
            return False

    _wait_for("both servers' /healthz", healthy, timeout=45, explain=fleet.logs)
    clock.lap("servers and workers up")
    _check_refresh_races(bases, world)
    clock.lap("refresh races")
    _check_revocation_reaches_the_other_host(bases, world)
    clock.lap("revocation across hosts")
    _check_shared_rate_limit_and_webhooks(bases, world, receiver, fleet, redis_url)
    clock.lap("webhooks")
    _check_payouts_once(database_url, emu, fleet, cli, period)
    clock.lap("payouts")

    # SIGTERM reaches the task processes of `--concurrency 2` through their parent, and everything stops cleanly.
    children = _children(fleet.procs["worker0"].pid)
    assert len(children) == 2, children
    names = ("worker0", "worker1", "serve0", "serve1")
    for name in names:
        fleet.terminate(name)
    assert {name: fleet.stop(name) for name in names} == dict.fromkeys(names, 0), fleet.logs()
    _wait_for(
        "the task processes to exit",
        lambda: not any(_alive(pid) for pid in children),
        timeout=10,
        explain=fleet.logs,
    )
    clock.lap("stop")
    print(f"\nphases: {clock}")


def _check_refresh_races(bases: list[str], world: dict[str, Any]) -> None:
    app = {"client_id": world["client_id"], "client_secret": world["client_secret"]}
    for token in world["families"][:ROUNDS]:
        results = _race_refresh(bases, token, app)
        statuses = sorted(r.status_code for r in results)
        assert statuses == [200] + [400] * (RACERS - 1), [(r.status_code, r.text[:200]) for r in results]
        assert {r.json()["error"] for r in results if r.status_code == 400} == {"invalid_grant"}
        winner = next(r for r in results if r.status_code == 200).json()
        # The losers presented a retired refresh token: the family is revoked, the winner's new tokens included.
        for base in bases:
            plan = httpx.get(f"{base}/api/v1/plan", headers={"Authorization": f"Bearer {winner['access_token']}"})
            assert plan.status_code == 401, plan.text
        again = _refresh(bases[1], winner["refresh_token"], app)
        assert (again.status_code, again.json()["error"]) == (400, "invalid_grant"), again.text
    # Without a race, rotation works across servers: refresh on one, refresh the new token on the other.
    first = _refresh(bases[0], world["families"][ROUNDS], app)
    assert first.status_code == 200, first.text
    second = _refresh(bases[1], first.json()["refresh_token"], app)
    assert second.status_code == 200, second.text
    plan = httpx.get(f"{bases[0]}/api/v1/plan", headers={"Authorization": f"Bearer {second.json()['access_token']}"})
    assert plan.status_code == 200, plan.text
    # Other families of the connection were not touched by the revocations.
    plan = httpx.get(f"{bases[1]}/api/v1/plan", headers={"Authorization": f"Bearer {world['api_token']}"})
    assert plan.status_code == 200, plan.text


def _check_revocation_reaches_the_other_host(bases: list[str], world: dict[str, Any]) -> None:
    """The servers have their own APERTUR_VAR_DIR, so their own token-cache generation files, as on two hosts:
    a revocation through one reaches the cached checks of the other through PostgreSQL's NOTIFY."""
    auth = {"Authorization": f"Bearer {world['cached_token']}"}
    for _ in range(8):  # new connections, so both granian workers of each server are likely to cache it
        for base in bases:
            assert httpx.get(f"{base}/api/v1/plan", headers=auth, timeout=20).status_code == 200
    revoked = httpx.post(
        f"{bases[0]}/oauth/revoke",
        data={"token": world["cached_token"], "client_id": world["client_id"], "client_secret": world["client_secret"]},
        timeout=20,
    )
    assert revoked.status_code == 200, revoked.text
    started, accepted = time.monotonic(), 0
    with httpx.Client(base_url=bases[1], timeout=20) as other:
        while other.get("/api/v1/plan", headers=auth).status_code != 401:
            accepted += 1
            assert time.monotonic() - started < 10, "the other server still accepts a revoked token after 10 s"
        took = time.monotonic() - started
    for _ in range(8):
        for base in bases:
            assert httpx.get(f"{base}/api/v1/plan", headers=auth, timeout=20).status_code == 401
    print(f"\nrevocation through one server: the other accepted the token {accepted} more times ({took * 1000:.1f} ms)")


def _check_shared_rate_limit_and_webhooks(
    bases: list[str], world: dict[str, Any], receiver: Receiver, fleet: Fleet, redis_url: str
) -> None:
    import redis

    auth = {"Authorization": f"Bearer {world['api_token']}"}
    remaining: list[int] = []
    created: list[str] = []
    for i in range(SESSIONS):  # alternating servers
        response = httpx.post(
            f"{bases[i % 2]}/api/v1/upload-sessions", json={"title": f"Session {i}"}, headers=auth, timeout=20
        )
        assert response.status_code == 201, response.text
        created.append(response.json()["id"])
        remaining.append(int(response.headers["RateLimit-Remaining"]))
    # One counter in Redis for both servers: each call takes one from the same budget (a new 60-s window may
    # begin once during the loop and start the count again).
    steps = [b - a for a, b in itertools.pairwise(remaining)]
    assert sum(1 for s in steps if s != -1) <= 1, remaining
    with redis.Redis.from_url(redis_url) as shared:
        keys = shared.keys("*rl:api-caller:*")
    assert keys, "the API rate-limit counter is not in Redis"

    def delivered() -> bool:
        fleet.check_alive("worker0", "worker1")
        return len(receiver.processed) >= SESSIONS

    _wait_for("the webhook deliveries", delivered, timeout=30, explain=fleet.logs)
    time.sleep(1.5)  # a second delivery of any event would arrive by now (the workers poll every second)
    ids = [r["headers"]["webhook-id"] for r in receiver.requests]
    assert len(ids) == SESSIONS and len(set(ids)) == SESSIONS, ids
    assert sorted(e["data"]["session"]["id"] for e in receiver.processed.values()) == sorted(created)
    assert {e["type"] for e in receiver.processed.values()} == {"session.created"}


def _check_payouts_once(
    database_url: str, emu: Running, fleet: Fleet, cli: subprocess.Popen[bytes], period: str
) -> None:
    try:
        assert cli.wait(timeout=60) == 0, fleet.logs()
    except subprocess.TimeoutExpired:
        raise AssertionError(f"apertur payouts run did not finish\n{fleet.logs()}") from None
    by_hand = json.loads((fleet.tmp / "payouts-cli.json").read_text())
    due = [row for row in by_hand["payouts"] if row["reason"] != "nothing_due"]  # every approved partner is listed
    assert by_hand["period"] == period and len(due) == PARTNERS, by_hand
    print(f"\napertur payouts run during the workers' ticks: {by_hand['summary']['reasons']}")

    def all_paid() -> bool:
        fleet.check_alive("worker0", "worker1")
        rows = _rows(database_url, "select status from payouts_payout")
        return len(rows) == PARTNERS and all(status == "paid" for (status,) in rows)

    _wait_for("every partner's payout to be paid", all_paid, timeout=40, explain=fleet.logs)
    payouts = _rows(database_url, "select partner_id, period, sender_batch_id, sender_item_id from payouts_payout")
    assert len({partner for partner, _, _, _ in payouts}) == PARTNERS == len(payouts)
    assert {p for _, p, _, _ in payouts} == {period}
    batches = emu.emulator.state()["batches"]
    # The partners share batches (one per chunk the runs saved): every batch is one of the payouts' batches, and
    # PayPal holds each payout's item exactly once over all of them.
    assert emu.emulator.counters["batches_created"] == len(batches) <= PARTNERS
    assert {b["batch_header"]["sender_batch_header"]["sender_batch_id"] for b in batches} == {
        batch for _, _, batch, _ in payouts
    }
    items = sorted(i["payout_item"]["sender_item_id"] for b in batches for i in b["items"])
    assert items == sorted(item for _, _, _, item in payouts)
    runs = _rows(database_url, "select period, finished_at is not null from payouts_payoutrun")
    assert runs == [(period, True)], runs
