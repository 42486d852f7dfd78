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
