"""The worker's hourly housekeeping at scale (issue 10): one pass over a token table of 1,000,000 rows of which a
third are dead (rotated or revoked more than 30 days ago, as hourly refreshes leave them), over 100,000 webhook
events past their 30 days, each with two deliveries and an attempt each, and over an audit log of 1,000,000 events
of which 250,000 are token refreshes past their 90 days. Prints the pass's time, query count and
peak memory, then a second pass with nothing left to delete; asserts nothing about time.

    .venv/bin/python bench/housekeeping.py            # 1,000,000 token rows, 100,000 events, 1,000,000 audit events
    .venv/bin/python bench/housekeeping.py --small    # 30,000 token rows, 3,000 events, 30,000 audit events

Runs on PostgreSQL in its own database, ``apertur_bench_housekeeping`` (dropped and created here, dropped again at
the end). The rows are generated with SQL; what is measured is ``apertur.core.housekeeping.prune`` as the worker
calls it (every registered pass: batches of 5,000 through Django's deletion, with its signals).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import sys

# The measuring and database helpers of bench/money.py, on a database of this benchmark's own.
os.environ.setdefault("BENCH_MONEY_DB", "apertur_bench_housekeeping")
import money


def generate(*, tokens: int, events: int) -> dict[str, int]:
    from django.db import connection

    from apertur.core import clock
    from apertur.oauth.tokens import connect
    from apertur.projects.services import create_project
    from apertur.testing import make_app, make_user
    from apertur.webhooks.models import WebhookEndpoint

    now = clock.now()
    created = make_app()
    user = make_user("housekeeping@example.com")
    project = create_project(owner=user, name="Bench")
    conn = connect(app=created.app, project=project, user=user, scopes=["project:read"])
    endpoints = [
        WebhookEndpoint.objects.create(project=project, url=f"https://hooks.example.com/{n}", secret="whsec_bench")
        for n in range(2)
    ]
    dead = tokens // 3
    old, recent = now - dt.timedelta(days=45), now - dt.timedelta(minutes=30)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO oauth_token (access_token_hash, refresh_token_hash, app_id, connection_id, project_id, user_id,
                scopes, refresh_scopes, livemode, family, issued_at, access_expires_at, refresh_expires_at,
                rotated_at, refresh_revoked_at)
            SELECT md5('a' || g) || md5('b' || g), md5('c' || g) || md5('d' || g), %(app)s, %(conn)s, %(project)s,
                %(user)s, 'project:read', '', true, md5('f' || (g / 24))::uuid,
                t, t + interval '1 hour', t + interval '60 days',
                CASE WHEN g <= %(dead)s THEN t END, CASE WHEN g <= %(dead)s THEN t END
            FROM (SELECT g, CASE WHEN g <= %(dead)s THEN %(old)s::timestamptz ELSE %(recent)s::timestamptz END AS t
                  FROM generate_series(1, %(n)s) g) s
            """,
            {
                "app": created.app.pk,
                "conn": conn.pk,
                "project": project.pk,
                "user": user.pk,
                "dead": dead,
                "old": old,
                "recent": recent,
                "n": tokens,
            },
        )
        cursor.execute(
            """
            INSERT INTO webhooks_webhookevent (public_id, project_id, type, data, livemode, created_at)
            SELECT 'evt_bench' || g, %(project)s, 'upload.created', '{"upload": {"id": "upl_x"}}', true, %(old)s
            FROM generate_series(1, %(n)s) g
            """,
            {"project": project.pk, "old": old, "n": events},
        )
        for endpoint in endpoints:
            cursor.execute(
                """
                INSERT INTO webhooks_webhookdelivery (event_id, endpoint_id, status, attempts, last_error, created_at,
                    delivered_at, last_status_code)
                SELECT id, %(endpoint)s, 'succeeded', 1, '', created_at, created_at, 204 FROM webhooks_webhookevent
                """,
                {"endpoint": endpoint.pk},
            )
        cursor.execute(
            """
            INSERT INTO webhooks_deliveryattempt (delivery_id, number, at, status_code, error, duration_ms)
            SELECT id, 1, created_at, 204, '', 40 FROM webhooks_webhookdelivery
            """
        )
        # The audit log: one oauth.token_refreshed per token row, half of them past their 90 days, beside as many
        # events a person made, just as old, which stay.
        cursor.execute(
            """
            INSERT INTO core_auditevent (action, object_type, object_id, data, ip, at)
            SELECT CASE WHEN g %% 2 = 0 THEN 'oauth.token_refreshed' ELSE 'project.settings_changed' END,
                'oauth.connection', %(conn)s::text, '{}'::jsonb, '203.0.113.7',
                CASE WHEN g <= %(n)s / 2 THEN %(ancient)s::timestamptz ELSE %(recent)s::timestamptz END
            FROM generate_series(1, %(n)s) g
            """,
            {"conn": conn.pk, "n": tokens, "ancient": now - dt.timedelta(days=100), "recent": recent},
        )
        cursor.execute("ANALYZE")
    return {"tokens": tokens, "dead_tokens": dead, "events": events, "audit": tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="30,000 token rows and 3,000 events")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tokens, events = (30_000, 3_000) if args.small else (1_000_000, 100_000)

    mail_dir = money.bench_environment()
    try:
        money.recreate_database()
    except Exception as exc:
        print(f"bench/housekeeping.py: PostgreSQL at {money.SERVER} is not reachable ({exc}); skipped.")
        return
    import django

    django.setup()
    import logging

    from django.core.management import call_command

    logging.getLogger("apertur").setLevel(logging.WARNING)
    try:
        call_command("migrate", verbosity=0)
        world = generate(tokens=tokens, events=events)
        print(
            f"{world['tokens']:,} token rows ({world['dead_tokens']:,} dead for 45 days), {world['events']:,} events "
            f"45 days old with {2 * world['events']:,} deliveries and as many attempts, {world['audit']:,} audit "
            f"events (half token refreshes, half of each 100 days old)"
        )
        from apertur.core import housekeeping

        for name in ("first pass", "second pass (nothing left)"):
            with money.step(f"housekeeping: {name}", count_queries=True) as out:
                done = housekeeping.prune()
                out["note"] = ", ".join(f"{k} {v:,}" for k, v in done.items() if v) or "nothing deleted"
        money.print_table("Housekeeping at scale (PostgreSQL)", money.ROWS)
    finally:
        money.drop_database()
        mail_dir.cleanup()


if __name__ == "__main__":
    main()
