# ruff: noqa: S603, S607, S310 - a local tool: it runs wrk, taskset and the servers it names, on loopback URLs
"""Side-by-side HTTP benchmark (issue 10): Apertur against django-oauth-toolkit, node-oidc-provider and a
trivial Django JSON view, on loopback, one app-server process pinned to core 0 and wrk pinned to core 1.

    make bench            # installs wrk, the peers (bench/.peers/) and runs this
    .venv/bin/python bench/http/harness.py [--duration 10] [--warmup 2] [--only apertur-sqlite,dot-sqlite,...]

Workloads: W1 authorization-code exchange (fresh single-use codes, one per request), W2 refresh with
rotation (fresh refresh token per request), W3 bearer-protected GET (Apertur: /api/v1/plan), W4 introspection.
Prints machine facts, one table and our ratios. Figures, never pass/fail.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench.servers import app_server, stop_group  # noqa: E402 - after the path to the repo is set

HERE = Path(__file__).resolve().parent
PEERS = ROOT / "bench" / ".peers"
RUN = PEERS / "run"
LUA = HERE / "wrk" / "workload.lua"
OUR_PY = ROOT / ".venv" / "bin" / "python"
DOT_PY = PEERS / "dot-venv" / "bin" / "python"
DOT_DIR = HERE / "peers" / "dot"
OIDC_DIR = PEERS / "oidc"
PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/apertur_bench")
CONNECTIONS = 16
THREADS = int(os.environ.get("BENCH_THREADS", "4"))
# The app server every Python server runs on (Apertur, the floor view, DOT): granian (what ``apertur serve``
# runs) or gunicorn's gthread worker (``--server gunicorn``), one worker process with THREADS threads.
APP_SERVERS = ("granian", "gunicorn")
SERVER_CORE, LOAD_CORE = "0", "1"
# Inputs minted per single-use workload (the measured run + the warm-up); a run that sends more requests
# than this is flagged "inputs reused" (its extra requests fail as replays).
MINT = {"apertur": 20_000, "dot": 4_000, "oidc": 60_000}
WORKLOADS = ("W1", "W2", "W3", "W4")
LABELS = {
    "W1": "W1 code exchange",
    "W2": "W2 refresh+rotate",
    "W3": "W3 bearer GET",
    "W4": "W4 introspection",
    "floor": "floor JSON view",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sh(cmd: list[str], **kw: Any) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


@dataclass
class Result:
    server: str
    workload: str
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    errors: int = 0
    requests: int = 0
    rss_mb: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass
class Server:
    name: str
    cmd: list[str]
    env: dict[str, str]
    cwd: Path
    port: int
    ready_path: str
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (RUN / f"{self.name}.log").open("wb")
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, *self.cmd],
            env=self.env,
            cwd=self.cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{self.ready_path}", timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # it answers
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} did not start; see {RUN / (self.name + '.log')}") from None
                time.sleep(0.2)

    def rss_mb(self) -> float:
        """RSS of the process that serves requests: the app server's worker (its main process's child) or node."""
        assert self.proc is not None
        pids = [str(self.proc.pid)]
        children = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        pids = children or pids
        total = 0
        for pid in pids:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        return total / 1024

    def stop(self) -> None:
        stop_group(self.proc)


def wrk(port: int, seconds: float, method: str, path: str, body: str = "-", file: str = "-", auth: str = "-") -> dict:
    duration = f"-d{max(1, round(seconds))}s"  # wrk takes whole seconds ("2.0s" is refused)
    cmd = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{CONNECTIONS}", duration, "--timeout", "5s"]
    cmd += ["-s", str(LUA), f"http://127.0.0.1:{port}", "--", method, path, body, file, auth]
    out = sh(cmd)
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    return dict(json.loads(line.removeprefix("WRKJSON ")))


@dataclass
class Spec:
    """How one server answers each workload: (method, path, body template, token file key, auth template)."""

    token_path: str
    introspect_path: str
    bearer_path: str
    inputs: dict[str, Any]

    def requests(self, workload: str) -> tuple[str, str, str, str, str]:
        i = self.inputs
        cred = f"client_id={quote(i['client_id'])}&client_secret={quote(i['client_secret'])}"
        if workload == "W1":
            body = f"grant_type=authorization_code&code={{}}&redirect_uri={quote(i['redirect_uri'], safe='')}&{cred}"
            return "POST", self.token_path, body, "codes", "-"
        if workload == "W2":
            return "POST", self.token_path, f"grant_type=refresh_token&refresh_token={{}}&{cred}", "refresh", "-"
        if workload == "W3":
            return "GET", self.bearer_path, "-", "", f"Bearer {i['access_token']}"
        return "POST", self.introspect_path, f"token={i['access_token']}&{cred}", "", "-"


def run_workloads(
    server: Server, spec: Spec, workloads: tuple[str, ...], args: argparse.Namespace, minted: int
) -> list[Result]:
    results = []
    for w in workloads:
        method, path, body, key, auth = spec.requests(w)
        files = spec.inputs["files"]
        if args.warmup:
            wrk(server.port, args.warmup, method, path, body, files.get(f"{key}_warm", "-") if key else "-", auth)
        stats = wrk(server.port, args.duration, method, path, body, files.get(key, "-") if key else "-", auth)
        results.append(to_result(server, w, stats, minted if key else 0))
        print_row(results[-1])
    return results


def to_result(server: Server, workload: str, stats: dict, minted: int) -> Result:
    errors = sum(stats[k] for k in ("connect", "read", "write", "status", "timeout"))
    r = Result(
        server=server.name,
        workload=workload,
        rps=stats["requests"] / (stats["duration_us"] / 1e6),
        p50_ms=stats["p50_us"] / 1000,
        p99_ms=stats["p99_us"] / 1000,
        errors=errors,
        requests=stats["requests"],
        rss_mb=server.rss_mb(),
    )
    if minted and stats["requests"] > minted:
        r.notes.append(f"inputs reused: {stats['requests']} requests > {minted} minted")
    return r


def print_row(r: Result) -> None:
    note = f"  ({'; '.join(r.notes)})" if r.notes else ""
    print(
        f"  {r.server:<24} {LABELS[r.workload]:<20} {r.rps:>9.0f} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} "
        f"{r.errors:>7} {r.rss_mb:>7.0f}{note}",
        flush=True,
    )


# --- servers ------------------------------------------------------------------------------------------


def reset_postgres(url: str) -> None:
    import psycopg

    base, _, name = url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


CACHE_ROW_NAMES = {"0": "nocache"}


def apertur(
    db: str, args: argparse.Namespace, *, token_cache: str = "", workloads: tuple[str, ...] = WORKLOADS
) -> list[Result]:
    """Apertur with its defaults (the local token cache on), or with ``APERTUR_TOKEN_CACHE=token_cache`` (row
    ``apertur-<db>-nocache`` for ``0``, else ``apertur-<db>-<token_cache>``)."""
    name = f"apertur-{db}" + (f"-{CACHE_ROW_NAMES.get(token_cache, token_cache)}" if token_cache else "")
    var = RUN / name
    shutil.rmtree(var, ignore_errors=True)
    var.mkdir(parents=True)
    if db == "sqlite":
        url = f"sqlite:///{var / 'apertur.sqlite3'}"
    else:
        url = PG_URL
        reset_postgres(url)
    env = {**os.environ, "DATABASE_URL": url, "APERTUR_VAR_DIR": str(var), "DEBUG": "0"}
    env["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    env.pop("REDIS_URL", None)
    env.pop("APERTUR_TOKEN_CACHE", None)
    if token_cache:
        env["APERTUR_TOKEN_CACHE"] = token_cache
    sh([str(OUR_PY), "-m", "django", "migrate", "-v0"], env=env, cwd=ROOT)
    n, warm = (MINT["apertur"], 2_000) if {"W1", "W2"} & set(workloads) else (1, 1)
    counts = ["--codes", str(n), "--refresh", str(n), "--warm", str(warm)]
    t0 = time.monotonic()
    inputs = json.loads(
        sh(
            [str(OUR_PY), str(HERE / "mint_apertur.py"), "--out-dir", str(var / "in"), *counts],
            env=env,
            cwd=ROOT,
        )
    )
    print(f"  ({name}: minted {2 * (n + warm)} inputs in {time.monotonic() - t0:.0f} s)", flush=True)
    port = free_port()
    cmd = app_server(args.server, OUR_PY, "apertur.config.wsgi:application", port, threads=THREADS)
    server = Server(name, cmd, env, ROOT, port, "/bench/floor")
    spec = Spec("/oauth/token", "/oauth/introspect", "/api/v1/plan", inputs)
    server.start()
    try:
        results = run_workloads(server, spec, workloads, args, n)
        if db == "sqlite" and not token_cache and not args.skip_floor:
            floor = Server("floor", [], env, ROOT, port, "/bench/floor", proc=server.proc)
            wrk(port, args.warmup or 1, "GET", "/bench/floor")
            results.append(to_result(floor, "floor", wrk(port, args.duration, "GET", "/bench/floor"), 0))
            print_row(results[-1])
    finally:
        server.stop()
    return results


def dot(args: argparse.Namespace) -> list[Result]:
    name = "dot-sqlite"
    var = RUN / name
    shutil.rmtree(var, ignore_errors=True)
    var.mkdir(parents=True)
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{var / 'dot.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "dotbench.settings",
    }
    sh([str(DOT_PY), "-m", "django", "migrate", "-v0"], env=env, cwd=DOT_DIR)
    n, warm = MINT["dot"], 500
    mint = [str(DOT_PY), "mint.py", "--codes", str(n), "--refresh", str(n), "--warm", str(warm)]
    inputs = json.loads(sh([*mint, "--out-dir", str(var / "in")], env=env, cwd=DOT_DIR))
    hashed = json.loads(
        sh(
            [str(DOT_PY), "mint.py", "--codes", "300", "--hashed", "--out-dir", str(var / "hashed")],
            env=env,
            cwd=DOT_DIR,
        )
    )
    port = free_port()
    cmd = app_server(args.server, DOT_PY, "dotbench.wsgi:application", port, threads=THREADS)
    server = Server(name, cmd, env, DOT_DIR, port, "/api/plan")
    spec = Spec("/o/token/", "/o/introspect/", "/api/plan", inputs)
    server.start()
    try:
        results = run_workloads(server, spec, WORKLOADS, args, n)
        # DOT's default: PBKDF2-hashed client secrets (a note: a short run, no warm-up).
        hspec = Spec("/o/token/", "/o/introspect/", "/api/plan", hashed)
        method, path, body, _, auth = hspec.requests("W1")
        stats = wrk(port, min(args.duration, 5), method, path, body, hashed["files"]["codes"], auth)
        r = to_result(server, "W1", stats, 300)
        r.server = "dot-sqlite (hashed)"
        r.notes.append("DOT default PBKDF2-hashed client secret")
        results.append(r)
        print_row(r)
    finally:
        server.stop()
    return results


def oidc(args: argparse.Namespace) -> list[Result]:
    name = "oidc-provider"
    var = RUN / name
    shutil.rmtree(var, ignore_errors=True)
    (var / "in").mkdir(parents=True)
    shutil.copy(HERE / "peers" / "oidc" / "server.mjs", OIDC_DIR / "server.mjs")
    port, mint_port = free_port(), free_port()
    env = {**os.environ, "NODE_ENV": "production"}
    server = Server(
        name,
        ["node", "server.mjs", str(port), str(mint_port)],
        env,
        OIDC_DIR,
        port,
        "/.well-known/openid-configuration",
    )
    server.start()
    try:
        n, warm = MINT["oidc"], 4_000
        t0 = time.monotonic()
        req = urllib.request.Request(
            f"http://127.0.0.1:{mint_port}/mint?codes={n}&refresh={n}&warm={warm}", method="POST"
        )
        with urllib.request.urlopen(req, timeout=600) as resp:
            minted = json.loads(resp.read())
        files = {}
        for key in ("codes", "codes_warm", "refresh", "refresh_warm"):
            path = var / "in" / f"{key}.txt"
            path.write_text("".join(f"{v}\n" for v in minted.pop(key)))
            files[key] = str(path)
        minted["files"] = files
        print(f"  ({name}: minted {2 * (n + warm)} inputs in {time.monotonic() - t0:.0f} s)", flush=True)
        spec = Spec("/token", "/token/introspection", "/me", minted)
        return run_workloads(server, spec, WORKLOADS, args, n)
    finally:
        server.stop()


# --- report -------------------------------------------------------------------------------------------


def machine_facts(server: str) -> list[str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    facts = [
        f"CPU: {cpu}, {os.cpu_count()} cores; kernel {platform.release()}",
        f"Python {platform.python_version()}; Django "
        + sh([str(OUR_PY), "-c", "import django;print(django.get_version())"]).strip(),
        f"{server} " + sh([str(OUR_PY), "-c", f"import {server};print({server}.__version__)"]).strip(),
        "SQLite " + sh([str(OUR_PY), "-c", "import sqlite3;print(sqlite3.sqlite_version)"]).strip(),
    ]
    try:
        facts.append("Node " + sh(["node", "--version"]).strip())
        pkg = json.loads((OIDC_DIR / "node_modules" / "oidc-provider" / "package.json").read_text())
        facts.append(f"oidc-provider {pkg['version']}")
    except (OSError, subprocess.CalledProcessError):
        pass
    if DOT_PY.exists():
        facts.append(
            "django-oauth-toolkit "
            + sh([str(DOT_PY), "-c", "import importlib.metadata as m;print(m.version('django-oauth-toolkit'))"]).strip()
        )
    try:
        import psycopg

        with psycopg.connect(PG_URL.rpartition("/")[0] + "/postgres") as conn:
            row = conn.execute("SHOW server_version").fetchone()
            facts.append(f"PostgreSQL {row[0] if row else '?'}")
    except Exception as exc:
        facts.append(f"PostgreSQL: unreachable ({type(exc).__name__})")
    facts.append("wrk " + subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split()[1])
    facts.append(
        f"method: {CONNECTIONS} keep-alive connections, wrk -t1 pinned to core {LOAD_CORE}, the server process "
        f"pinned to core {SERVER_CORE}; Python servers: {server}, 1 worker, "
        + (f"{THREADS} blocking threads" if server == "granian" else f"gthread x{THREADS}")
    )
    return facts


def ratios(results: list[Result]) -> list[str]:
    by = {(r.server, r.workload): r for r in results}
    lines = []
    for db in ("sqlite", "postgres", "postgres-nocache"):
        ours = f"apertur-{db}"
        if not any(k[0] == ours for k in by):
            continue
        for w in WORKLOADS:
            mine = by.get((ours, w))
            if mine is None or not mine.rps:
                continue
            parts = []
            for peer, label in (("dot-sqlite", "DOT"), ("oidc-provider", "oidc-provider")):
                other = by.get((peer, w))
                if other and other.rps:
                    parts.append(f"{mine.rps / other.rps:5.2f}x {label}")
            floor = by.get(("floor", "floor"))
            if w in ("W3", "W4") and floor and floor.rps:
                parts.append(f"{100 * mine.rps / floor.rps:4.0f} % of floor")
            lines.append(f"  {ours:<24} {LABELS[w]:<20} " + "   ".join(parts))
    return lines


HEADER = f"  {'server':<24} {'workload':<20} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'RSS MB':>7}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument(
        "--only", default="apertur-sqlite,apertur-postgres,apertur-postgres-nocache,dot-sqlite,oidc-provider"
    )
    parser.add_argument("--skip-floor", action="store_true")
    parser.add_argument("--server", choices=APP_SERVERS, default="granian", help="app server of the Python servers")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (make bench installs it)")
    RUN.mkdir(parents=True, exist_ok=True)
    print("== HTTP benchmark (bench/http) ==")
    for fact in machine_facts(args.server):
        print(f"  {fact}")
    print(HEADER, flush=True)
    results: list[Result] = []
    wanted = args.only.split(",")
    if "apertur-sqlite" in wanted:
        results += apertur("sqlite", args)
    if "apertur-postgres" in wanted:
        results += apertur("postgres", args)
    if "apertur-postgres-nocache" in wanted:
        # PostgreSQL with the token cache off (APERTUR_TOKEN_CACHE=0, as behind a pooler that cannot carry
        # LISTEN): one indexed query per bearer GET and introspection; the code exchange and refresh are the same.
        results += apertur("postgres", args, token_cache="0", workloads=("W3", "W4"))
    if "dot-sqlite" in wanted:
        results += dot(args)
    if "oidc-provider" in wanted:
        results += oidc(args)
    print("\n== Results ==")
    print(HEADER)
    for r in results:
        print_row(r)
    print("\n== Ours / peers (requests per second) ==")
    for line in ratios(results):
        print(line)
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=2))


if __name__ == "__main__":
    main()
