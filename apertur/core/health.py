"""Is this process able to serve? The one set of checks behind ``/healthz`` (JSON, for load balancers and
monitors) and ``/status`` (the same answer as a page, for people)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection


@dataclass(frozen=True, slots=True)
class Health:
    database: str  # "ok", or the class name of the driver error the query raised

    @property
    def ok(self) -> bool:
        return self.database == "ok"

    @property
    def http_status(self) -> int:
        return 200 if self.ok else 503

    def as_json(self) -> dict[str, str]:
        return {"status": "ok" if self.ok else "unavailable", "database": self.database}


def check() -> Health:
    """The database answers a query (``/healthz`` does not check Redis or the workers: docs/deploy.md)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "not healthy"
        return Health(database=type(exc).__name__)
    return Health(database="ok")
