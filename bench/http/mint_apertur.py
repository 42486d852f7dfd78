"""Mint the inputs of the HTTP benchmark for Apertur, through Apertur's own services: one approved partner
with an OAuth app, one customer whose project is connected to it, then single-use authorization codes (W1),
refresh tokens (W2) and one access token (W3, W4), each written one per line for wrk's Lua to read.

    DJANGO_SETTINGS_MODULE=bench.settings DATABASE_URL=... python bench/http/mint_apertur.py \
        --out-dir DIR --codes 30000 --refresh 30000

Prints one JSON object: client_id, client_secret, redirect_uri, access_token and the files written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

REDIRECT_URI = "https://bench.example/callback"
SCOPES = ["plan:read", "project:read"]
BATCH = 500


@dataclass
class Fixture:
    app: Any
    client_secret: str
    user: Any
    project: Any
    connection: Any


def create_fixture() -> Fixture:
    """A fresh partner, app, customer and connection (unique emails, so reruns on one database work)."""
    import secrets

    from apertur.accounts.services import create_user
    from apertur.oauth import tokens as token_store
    from apertur.oauth.services import create_app
    from apertur.partners import services as partners
    from apertur.projects.selectors import plan_by_name
    from apertur.projects.services import create_project

    tag = secrets.token_hex(4)
    partner_user = create_user(
        email=f"bench-partner-{tag}@example.com",
        password=secrets.token_urlsafe(16),
        email_confirmed=True,
        send_confirmation=False,
    )
    partner = partners.apply(
        user=partner_user,
        company_name="Bench partner",
        website="https://bench.example",
        use_case="Load-testing the token endpoint and the API on loopback.",
        expected_customers="11-100",
    )
    partner = partners.approve(partner=partner, reviewer=None)
    created = create_app(partner=partner, name="Bench", redirect_uris=[REDIRECT_URI])
    customer = create_user(
        email=f"bench-customer-{tag}@example.com",
        password=secrets.token_urlsafe(16),
        email_confirmed=True,
        send_confirmation=False,
    )
    project = create_project(owner=customer, name="Bench project", plan=plan_by_name("Pro"))
    connection = token_store.connect(app=created.app, project=project, user=customer, scopes=SCOPES)
    return Fixture(
        app=created.app, client_secret=created.client_secret, user=customer, project=project, connection=connection
    )


def mint_codes(fx: Fixture, n: int) -> list[str]:
    from django.db import transaction

    from apertur.oauth import tokens as token_store

    codes: list[str] = []
    while len(codes) < n:
        with transaction.atomic():
            for _ in range(min(BATCH, n - len(codes))):
                code = token_store.new_code()
                token_store.save_code(
                    code=code,
                    connection=fx.connection,
                    user=fx.user,
                    scopes=SCOPES,
                    redirect_uri=REDIRECT_URI,
                    code_challenge="",
                    code_challenge_method="",
                    livemode=True,
                )
                codes.append(code)
    return codes


def _issue(fx: Fixture) -> tuple[str, str]:
    from apertur.oauth import tokens as token_store

    access, refresh = token_store.new_access_token(), token_store.new_refresh_token()
    token_store.issue(
        connection=fx.connection, scopes=SCOPES, livemode=True, access_token=access, refresh_token=refresh
    )
    return access, refresh


def mint_refresh_tokens(fx: Fixture, n: int) -> list[str]:
    from django.db import transaction

    refresh_tokens: list[str] = []
    while len(refresh_tokens) < n:
        with transaction.atomic():
            for _ in range(min(BATCH, n - len(refresh_tokens))):
                refresh_tokens.append(_issue(fx)[1])
    return refresh_tokens


def mint_access_token(fx: Fixture) -> str:
    return _issue(fx)[0]


def _write(path: Path, lines: list[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--codes", type=int, default=0, help="W1 codes (plus --warm more in *_warm.txt)")
    parser.add_argument("--refresh", type=int, default=0, help="W2 refresh tokens (plus --warm more)")
    parser.add_argument("--warm", type=int, default=0, help="extra codes/refresh tokens for the warm-up")
    args = parser.parse_args(argv)

    import django

    django.setup()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    fx = create_fixture()
    files: dict[str, str] = {}
    for kind, count, mint in (("codes", args.codes, mint_codes), ("refresh", args.refresh, mint_refresh_tokens)):
        if count:
            _write(args.out_dir / f"{kind}.txt", mint(fx, count))
            files[kind] = str(args.out_dir / f"{kind}.txt")
            if args.warm:
                _write(args.out_dir / f"{kind}_warm.txt", mint(fx, args.warm))
                files[f"{kind}_warm"] = str(args.out_dir / f"{kind}_warm.txt")
    out = {
        "client_id": fx.app.client_id,
        "client_secret": fx.client_secret,
        "redirect_uri": REDIRECT_URI,
        "access_token": mint_access_token(fx),
        "files": files,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
