import string
from typing import Any

from apertur.core import tokens
from apertur.core.tokens import Prefix


def test_generated_secrets_are_prefixed_and_unique() -> None:
    values = {tokens.generate(Prefix.ACCESS_TOKEN) for _ in range(200)}
    assert len(values) == 200
    assert all(v.startswith("oat_") and len(v) == 44 for v in values)


def test_hash_and_constant_time_match() -> None:
    secret = tokens.generate(Prefix.CLIENT_SECRET)
    stored = tokens.hash_secret(secret)
    assert len(stored) == 64 and secret not in stored
    assert tokens.secret_matches(secret, stored)
    assert not tokens.secret_matches(secret + "x", stored)


def test_prefixes_are_the_documented_ones() -> None:
    assert Prefix.LIVE_PUBLIC_KEY == "aptr_live_pk_"
    assert Prefix.TEST_PUBLIC_KEY == "aptr_test_pk_"
    assert Prefix.ACCESS_TOKEN == "oat_"


def test_random_strings_take_every_accepted_byte_once_modulo_62_and_drop_the_rest(monkeypatch: Any) -> None:
    """Unbiased: of the 256 byte values, the 248 below 248 map onto the 62 characters four times each; the 8
    above would favour 8 characters, so they are dropped and more bytes are drawn."""
    import secrets

    draws = [bytes(range(256)), bytes(range(256))]
    monkeypatch.setattr(secrets, "token_bytes", lambda n: draws.pop(0))
    alphabet = string.ascii_letters + string.digits
    assert tokens.random_string(248) == alphabet * 4
    assert draws == [bytes(range(256))]  # one draw was enough
    draws[:] = [bytes([255] * 60), bytes([0, 61, 62, 247])]
    assert tokens.random_string(4) == "a9a9"
