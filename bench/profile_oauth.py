"""In-process profile of the OAuth hot paths (issue 10, W1-W4): no HTTP server, no load generator.

    .venv/bin/python bench/profile_oauth.py [-n 2000] [--cprofile W1]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/apertur_perf .venv/bin/python bench/profile_oauth.py

Each request goes through Django's real WSGI handler (the whole middleware stack, URL resolution, the view,
the transaction and its COMMIT), called directly with a WSGI environ, so the figures are the server's own
per-request cost without sockets or a parser in front. It prints, per workload, the mean/p50/p99 time per
request in µs, the single-process requests/s that mean implies, and the SQL statements per request.

- W1: authorization-code exchange (codes pre-minted through ``apertur.oauth.tokens.save_code``), Basic auth
- W2: refresh with rotation (each response's refresh token is the next request's)
- W3: ``GET /api/v1/plan`` with a bearer access token
- W4: introspection of an access token (RFC 7662), Basic auth
- floor: a trivial JSON view added to the URLconf, through the same middleware stack

It works on a throw-away test database (Django's test database machinery: a file under var/ for SQLite,
``test_<name>`` on PostgreSQL) and drops it at the end. The rate limits are raised for the run (their
cache round trips stay in the measurement). Figures are printed, never asserted: timings on shared machines
are noisy; the query counts are asserted by apertur/oauth/tests/test_query_counts.py and
apertur/api/tests/test_query_counts.py.
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import io
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apertur.config.settings")


class QueryCounter:
    def __init__(self) -> None:
        self.count = 0
        self.sql: list[str] = []

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        self.count += 1
        self.sql.append(sql)
        return execute(sql, params, many, context)


def environ(method: str, path: str, *, body: bytes = b"", content_type: str = "", auth: str = "") -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "CONTENT_LENGTH": str(len(body)),
    }
    if content_type:
        env["CONTENT_TYPE"] = content_type
    if auth:
        env["HTTP_AUTHORIZATION"] = auth
    return env


class Fixture:
    """One partner app, a customer's Pro project connected to it, and helpers to mint codes."""

    def __init__(self) -> None:
        from apertur.oauth import tokens as token_store
        from apertur.projects.selectors import plan_by_name
        from apertur.projects.services import create_project
        from apertur.testing import REDIRECT_URI, make_app, make_user

        self.created = make_app()
        self.app = self.created.app
        self.customer = make_user("bench-customer@example.com")
        self.project = create_project(owner=self.customer, name="Bench", plan=plan_by_name("Pro"))
        self.scopes = ["plan:read", "project:read"]
        self.connection = token_store.connect(
            app=self.app, project=self.project, user=self.customer, scopes=self.scopes
        )
        self.redirect_uri = REDIRECT_URI
        basic = base64.b64encode(f"{self.app.client_id}:{self.created.client_secret}".encode()).decode()
        self.basic = f"Basic {basic}"

    def mint_codes(self, n: int) -> list[str]:
        from django.db import transaction

        from apertur.oauth import tokens as token_store

        codes = []
        with transaction.atomic():
            for _ in range(n):
                code = token_store.new_code()
                token_store.save_code(
                    code=code,
                    connection=self.connection,
                    user=self.customer,
                    scopes=self.scopes,
                    redirect_uri=self.redirect_uri,
                    code_challenge="",
                    code_challenge_method="",
                    livemode=True,
                )
                codes.append(code)
        return codes


def call(app: Any, env: dict[str, Any]) -> tuple[int, bytes]:
    status: list[str] = []

    def start_response(s: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        status.append(s)

    chunks = app(env, start_response)
    body = b"".join(chunks)
    if hasattr(chunks, "close"):
        chunks.close()
    return int(status[0].split()[0]), body


def run(
    label: str, app: Any, make_env: Callable[[int], dict[str, Any]], n: int, after: Callable[[bytes], None] | None
) -> dict[str, Any]:
    from django.db import connection

    counter = QueryCounter()
    samples: list[float] = []
    cpu: list[float] = []
    errors = 0
    queries: list[int] = []
    for i in range(n):
        env = make_env(i)
        before = counter.count
        with connection.execute_wrapper(counter):
            start_cpu = time.thread_time()
            start = time.perf_counter()
            status, body = call(app, env)
            samples.append(time.perf_counter() - start)
            cpu.append(time.thread_time() - start_cpu)
        queries.append(counter.count - before)
        if status != 200:
            errors += 1
            if errors <= 3:
                print(f"  {label}: HTTP {status} {body[:200]!r}", file=sys.stderr)
        elif after is not None:
            after(body)
    samples.sort()
    mean = statistics.fmean(samples) * 1e6
    return {
        "label": label,
        "n": n,
        "mean": mean,
        "cpu": statistics.fmean(cpu) * 1e6,
        "p50": samples[len(samples) // 2] * 1e6,
        "p99": samples[max(0, int(len(samples) * 0.99) - 1)] * 1e6,
        "rps": 1e6 / mean if mean else 0.0,
        "queries": statistics.mode(queries) if queries else 0,
        "errors": errors,
        "sample_sql": counter.sql[-max(1, queries[-1] if queries else 1) :],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="requests per workload (bounded)")
    parser.add_argument("--cprofile", choices=["W1", "W2", "W3", "W4", "floor"], help="print a cProfile of one")
    parser.add_argument("--sort", default="cumulative", help="cProfile sort key (cumulative, tottime)")
    parser.add_argument("--sql", action="store_true", help="print one request's SQL per workload")
    args = parser.parse_args()
    n = max(10, min(args.n, 50_000))

    import json

    import django

    django.setup()
    from django.db import connection
    from django.http import JsonResponse
    from django.test.utils import setup_test_environment
    from django.urls import clear_url_caches, path

    from apertur.api import auth as api_auth
    from apertur.config import urls
    from apertur.core.ratelimit import Limit
    from apertur.oauth import limits

    # Same cost (cache round trips), budgets the run cannot spend.
    big = 10**9
    for name in ("TOKEN_PER_IP", "TOKEN_PER_CLIENT"):
        old = getattr(limits, name)
        setattr(limits, name, Limit(old.name, big, old.window_seconds))
    api_auth.PER_CALLER = Limit(api_auth.PER_CALLER.name, big, api_auth.PER_CALLER.window_seconds)

    def floor(request: Any) -> JsonResponse:
        return JsonResponse({"ok": True})

    urls.urlpatterns.append(path("bench/floor", floor))
    clear_url_caches()

    setup_test_environment(debug=False)
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        from django.conf import settings
        from django.core.handlers.wsgi import WSGIHandler

        print(
            f"Python {sys.version.split()[0]}, {connection.vendor} {connection.Database.sqlite_version if connection.vendor == 'sqlite' else ''}".rstrip()  # noqa: E501
            + f", cache {settings.CACHES['default']['BACKEND'].rsplit('.', 1)[-1]}, n={n} per workload"
        )
        fx = Fixture()
        wsgi = WSGIHandler()
        warm = min(200, n // 5)
        codes = fx.mint_codes(n + warm)
        token_body = {
            "grant_type": "authorization_code",
            "code": "",
            "redirect_uri": fx.redirect_uri,
        }

        def w1_env(i: int) -> dict[str, Any]:
            body = urlencode({**token_body, "code": codes.pop()}).encode()
            return environ(
                "POST", "/oauth/token", body=body, content_type="application/x-www-form-urlencoded", auth=fx.basic
            )

        first: dict[str, str] = {}

        def keep_first(body: bytes) -> None:
            if not first:
                first.update(json.loads(body))

        results = []
        profiler = cProfile.Profile() if args.cprofile else None

        def measure(label: str, make_env: Callable[[int], dict[str, Any]], after: Any = None) -> None:
            run(label, wsgi, make_env, warm, after)  # warm-up: imports, caches, connection
            if profiler and args.cprofile == label:
                profiler.enable()
            results.append(run(label, wsgi, make_env, n, after))
            if profiler and args.cprofile == label:
                profiler.disable()

        measure("W1", w1_env, keep_first)
        refresh = {"token": first["refresh_token"]}

        def w2_env(i: int) -> dict[str, Any]:
            body = urlencode({"grant_type": "refresh_token", "refresh_token": refresh["token"]}).encode()
            return environ(
                "POST", "/oauth/token", body=body, content_type="application/x-www-form-urlencoded", auth=fx.basic
            )

        def next_refresh(body: bytes) -> None:
            refresh["token"] = json.loads(body)["refresh_token"]

        measure("W2", w2_env, next_refresh)
        # A live access token for W3/W4: the newest of the refresh chain.
        last = call(wsgi, w2_env(0))
        access = json.loads(last[1])["access_token"]

        measure("W3", lambda i: environ("GET", "/api/v1/plan", auth=f"Bearer {access}"))
        introspect_body = urlencode({"token": access, "token_type_hint": "access_token"}).encode()

        def w4_env(i: int) -> dict[str, Any]:
            return environ(
                "POST",
                "/oauth/introspect",
                body=introspect_body,
                content_type="application/x-www-form-urlencoded",
                auth=fx.basic,
            )

        def active(body: bytes) -> None:
            assert json.loads(body)["active"] is True, body

        measure("W4", w4_env, active)
        measure("floor", lambda i: environ("GET", "/bench/floor"))

        floor_mean, floor_cpu = results[-1]["mean"], results[-1]["cpu"]
        print(
            f"{'workload':<8} {'mean µs':>9} {'p50 µs':>9} {'p99 µs':>9} {'cpu µs':>8} {'req/s':>8} "
            f"{'% floor':>8} {'cpu % floor':>11} {'SQL':>4} {'err':>4}"
        )
        for r in results:
            print(
                f"{r['label']:<8} {r['mean']:9.0f} {r['p50']:9.0f} {r['p99']:9.0f} {r['cpu']:8.0f} {r['rps']:8.0f} "
                f"{100 * floor_mean / r['mean']:7.0f}% {100 * floor_cpu / r['cpu']:10.0f}% "
                f"{r['queries']:4d} {r['errors']:4d}"
            )
        print("(req/s = 1e6 / mean µs, one process, no HTTP; cpu µs = this thread's CPU time per request)")
        if args.sql:
            for r in results:
                print(f"\n{r['label']} SQL:")
                for sql in r["sample_sql"]:
                    print("  ", sql[:300])
        if profiler:
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(45)
            print(out.getvalue())
    finally:
        from apertur.oauth import token_cache

        token_cache.release_database()
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
