"""``python -m apertur.core.pgcheck URL``: exit 0 when that PostgreSQL server answers (used by make)."""

from __future__ import annotations

import sys

import psycopg


def main(url: str) -> int:
    try:
        with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        print(f"PostgreSQL at {url}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
