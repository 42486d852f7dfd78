"""A :class:`~apertur_connect.stores.LockingTokenStore` in any SQL database SQLAlchemy speaks (PostgreSQL,
MySQL, SQLite, …). Needs the ``sqlalchemy`` extra; encryption at rest needs ``crypto`` as well.

The refresh lock is a lease in the token's own row (``UPDATE … WHERE lock_until < now``), so it works across
processes and machines on every database, holds no transaction open during the HTTP call, and frees itself
if its holder dies.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from apertur_connect.models import TokenSet
from apertur_connect.stores import _fernet


class SQLAlchemyStore:
    def __init__(
        self,
        engine: sa.Engine,
        *,
        table_name: str = "apertur_connect_tokens",
        encryption_key: str | bytes | None = None,
        lease_seconds: float = 30.0,
        metadata: sa.MetaData | None = None,
    ) -> None:
        self.engine = engine
        self.lease_seconds = lease_seconds
        self._fernet = _fernet(encryption_key) if encryption_key is not None else None
        self.table = sa.Table(
            table_name,
            metadata if metadata is not None else sa.MetaData(),
            sa.Column("key", sa.String(255), primary_key=True),
            sa.Column("data", sa.Text, nullable=False),
            sa.Column("updated_at", sa.Float, nullable=False),
            sa.Column("lock_until", sa.Float, nullable=True),
        )

    def create_table(self) -> None:
        """Create the table if it does not exist (or add ``self.table`` to your Alembic migrations)."""
        self.table.create(self.engine, checkfirst=True)

    def _encode(self, tokens: TokenSet) -> str:
        text = json.dumps(tokens.to_json())
        if self._fernet is None:
            return text
        token: bytes = self._fernet.encrypt(text.encode())
        return token.decode()

    def _decode(self, stored: str) -> TokenSet:
        text = stored if self._fernet is None else self._fernet.decrypt(stored.encode()).decode()
        data: Any = json.loads(text)
        return TokenSet.from_json(data)

    def get(self, key: str) -> TokenSet | None:
        with self.engine.connect() as conn:
            stored = conn.execute(sa.select(self.table.c.data).where(self.table.c.key == key)).scalar()
        return None if stored is None else self._decode(stored)

    def set(self, key: str, tokens: TokenSet) -> None:
        data, now = self._encode(tokens), time.time()
        with self.engine.begin() as conn:
            updated = conn.execute(
                sa.update(self.table).where(self.table.c.key == key).values(data=data, updated_at=now)
            ).rowcount
            if not updated:
                conn.execute(sa.insert(self.table).values(key=key, data=data, updated_at=now, lock_until=None))

    def delete(self, key: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(self.table).where(self.table.c.key == key))

    @contextlib.contextmanager
    def lock(self, key: str, *, timeout: float = 60.0) -> Iterator[None]:
        """A lease on the row: acquired with one conditional UPDATE, polled while someone else holds it.
        A key with no row yet needs no lock (there is no refresh token to spend)."""
        c = self.table.c
        deadline = time.monotonic() + timeout
        acquired = False
        while True:
            now = time.time()
            with self.engine.begin() as conn:
                exists = conn.execute(sa.select(c.key).where(c.key == key)).first() is not None
                if not exists:
                    break
                acquired = bool(
                    conn.execute(
                        sa.update(self.table)
                        .where(c.key == key, sa.or_(c.lock_until.is_(None), c.lock_until < now))
                        .values(lock_until=now + self.lease_seconds)
                    ).rowcount
                )
            if acquired:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not lock the tokens of {key!r} within {timeout} s")
            time.sleep(0.05)
        try:
            yield
        finally:
            if acquired:
                with self.engine.begin() as conn:
                    conn.execute(sa.update(self.table).where(c.key == key).values(lock_until=None))
