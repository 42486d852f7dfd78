"""Mint the benchmark's inputs for django-oauth-toolkit through its own models: an application (client
secret hashed or not), a user, then Grants (W1 codes), RefreshTokens paired with AccessTokens (W2) and one
AccessToken (W3, W4). Prints one JSON object like bench/http/mint_apertur.py."""

import argparse
import datetime as dt
import json
import os
import secrets
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dotbench.settings")

REDIRECT_URI = "https://bench.example/callback"
SCOPE = "read introspection"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--codes", type=int, default=0)
    parser.add_argument("--refresh", type=int, default=0)
    parser.add_argument("--warm", type=int, default=0)
    parser.add_argument("--hashed", action="store_true", help="DOT's default: PBKDF2-hashed client secret")
    args = parser.parse_args()

    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.utils import timezone
    from oauth2_provider.models import AccessToken, Application, Grant, RefreshToken

    tag = secrets.token_hex(4)
    user = User.objects.create_user(username=f"bench-{tag}", password=secrets.token_urlsafe(16))
    client_secret = secrets.token_urlsafe(40)
    app = Application.objects.create(
        name=f"Bench {tag}",
        user=user,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=REDIRECT_URI,
        client_secret=client_secret,
        hash_client_secret=args.hashed,
        algorithm="",
    )
    now = timezone.now()
    args.out_dir.mkdir(parents=True, exist_ok=True)

    def codes(n: int) -> list[str]:
        values = [secrets.token_urlsafe(30) for _ in range(n)]
        Grant.objects.bulk_create(
            Grant(
                user=user,
                application=app,
                code=v,
                expires=now + dt.timedelta(minutes=30),
                redirect_uri=REDIRECT_URI,
                scope=SCOPE,
            )
            for v in values
        )
        return values

    def access_tokens(n: int) -> list[AccessToken]:
        return AccessToken.objects.bulk_create(
            AccessToken(
                user=user,
                application=app,
                token=secrets.token_urlsafe(30),
                expires=now + dt.timedelta(hours=1),
                scope=SCOPE,
            )
            for _ in range(n)
        )

    def refresh_tokens(n: int) -> list[str]:
        values = [secrets.token_urlsafe(30) for _ in range(n)]
        pairs = zip(values, access_tokens(n), strict=True)
        RefreshToken.objects.bulk_create(
            RefreshToken(user=user, application=app, token=v, access_token=at) for v, at in pairs
        )
        return values

    files = {}
    for kind, count, mint in (("codes", args.codes, codes), ("refresh", args.refresh, refresh_tokens)):
        for suffix, n in (("", count), ("_warm", args.warm if count else 0)):
            if n:
                path = args.out_dir / f"{kind}{suffix}.txt"
                path.write_text("".join(f"{v}\n" for v in mint(n)))
                files[f"{kind}{suffix}"] = str(path)
    print(
        json.dumps(
            {
                "client_id": app.client_id,
                "client_secret": client_secret,
                "redirect_uri": REDIRECT_URI,
                "access_token": access_tokens(1)[0].token,
                "files": files,
            }
        )
    )


if __name__ == "__main__":
    main()
