"""The HTTP benchmark's inputs are valid (bench/http): our server started with the bench settings on
loopback accepts the codes and refresh tokens minted by bench/http/mint_apertur.py, the access token reaches
the API and introspection, and the floor view answers JSON. No timings: the benchmark prints those."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.servers import app_server, stop_group

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.own_database


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def bench_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("bench")
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp / 'bench.sqlite3'}",
        "APERTUR_VAR_DIR": str(tmp / "var"),
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DEBUG": "0",
    }
    env.pop("REDIS_URL", None)
    subprocess.run([sys.executable, "-m", "django", "migrate", "-v0"], env=env, cwd=ROOT, check=True, timeout=180)
    minted = subprocess.run(
        [sys.executable, "bench/http/mint_apertur.py", "--out-dir", str(tmp / "in"), "--codes", "5", "--refresh", "5"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    inputs = json.loads(minted.stdout)
    port = _free_port()
    log = (tmp / "server.log").open("wb")
    proc = subprocess.Popen(
        app_server("granian", sys.executable, "apertur.config.wsgi:application", port, threads=1),
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/bench/floor", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError((tmp / "server.log").read_text()) from None
                time.sleep(0.2)
        yield base, inputs
    finally:
        stop_group(proc)
        log.close()


def _lines(path: str) -> list[str]:
    return Path(path).read_text().split()


def _cred(inputs: dict[str, Any]) -> dict[str, str]:
    return {"client_id": inputs["client_id"], "client_secret": inputs["client_secret"]}


def test_minted_codes_exchange_once(bench_server: tuple[str, dict[str, Any]]) -> None:
    base, inputs = bench_server
    codes = _lines(inputs["files"]["codes"])
    assert len(codes) == 5
    with httpx.Client(base_url=base, timeout=10) as http:
        for code in codes:
            body = {"grant_type": "authorization_code", "code": code, "redirect_uri": inputs["redirect_uri"]}
            response = http.post("/oauth/token", data={**body, **_cred(inputs)})
            assert response.status_code == 200, response.text
            assert response.json()["access_token"].startswith("oat_")
        replay = {"grant_type": "authorization_code", "code": codes[0], "redirect_uri": inputs["redirect_uri"]}
        assert http.post("/oauth/token", data={**replay, **_cred(inputs)}).status_code == 400


def test_minted_refresh_tokens_rotate(bench_server: tuple[str, dict[str, Any]]) -> None:
    base, inputs = bench_server
    tokens = _lines(inputs["files"]["refresh"])
    assert len(tokens) == 5
    with httpx.Client(base_url=base, timeout=10) as http:
        for token in tokens:
            response = http.post(
                "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": token, **_cred(inputs)}
            )
            assert response.status_code == 200, response.text
            assert response.json()["refresh_token"] != token


def test_access_token_reaches_plan_and_introspection(bench_server: tuple[str, dict[str, Any]]) -> None:
    base, inputs = bench_server
    with httpx.Client(base_url=base, timeout=10) as http:
        plan = http.get("/api/v1/plan", headers={"Authorization": f"Bearer {inputs['access_token']}"})
        assert plan.status_code == 200, plan.text
        assert plan.json()["name"] == "Pro"
        info = http.post("/oauth/introspect", data={"token": inputs["access_token"], **_cred(inputs)})
        assert info.status_code == 200
        assert info.json()["active"] is True


def test_floor_view_answers_json(bench_server: tuple[str, dict[str, Any]]) -> None:
    base, _ = bench_server
    response = httpx.get(f"{base}/bench/floor", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"ok": True, "name": "floor"}


def test_ratios_cover_every_apertur_row_against_the_same_runs_peers() -> None:
    sys.path.insert(0, str(ROOT / "bench" / "http"))
    try:
        import harness
    finally:
        sys.path.pop(0)
    rows = [
        harness.Result("apertur-sqlite", "W3", rps=3000),
        harness.Result("apertur-postgres-nocache", "W4", rps=2000),
        harness.Result("dot-sqlite", "W3", rps=500),
        harness.Result("dot-sqlite", "W4", rps=400),
        harness.Result("oidc-provider", "W3", rps=6000),
        harness.Result("floor", "floor", rps=4000),
    ]
    lines = [" ".join(line.split()) for line in harness.ratios(rows)]
    assert lines == [
        "apertur-sqlite W3 bearer GET 6.00x DOT 0.50x oidc-provider 75 % of floor",
        "apertur-postgres-nocache W4 introspection 5.00x DOT 50 % of floor",
    ]
