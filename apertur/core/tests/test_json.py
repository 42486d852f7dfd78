"""core.validation.loads_json: every way a body someone sent fails to parse is a ValueError."""

from __future__ import annotations

import pytest

from apertur.core.validation import loads_json


@pytest.mark.parametrize("raw", [b"{", b"\xff\xfe", "[" * 100_000, b"{" * 100_000, '{"a": ' * 50_000])
def test_unparsable_bodies_are_value_errors(raw: str | bytes) -> None:
    with pytest.raises(ValueError):
        loads_json(raw)


def test_a_body_parses_as_json_does() -> None:
    assert loads_json(b'{"a": [1, 2.5, null]}') == {"a": [1, 2.5, None]}
    nested = loads_json("[" * 50 + "]" * 50)  # nesting a real document has is fine
    for _ in range(49):
        nested = nested[0]
    assert nested == []
    assert loads_json("[[]]") == [[]]
    pairs: list[list[tuple[str, object]]] = []
    loads_json('{"a": 1, "a": 2}', object_pairs_hook=lambda p: pairs.append(p) or dict(p))
    assert pairs == [[("a", 1), ("a", 2)]]


def test_without_nul_replaces_every_nul_and_keeps_everything_else() -> None:
    from apertur.core.validation import without_nul

    event = {"a\x00": ["x\x00y", 1, None, True, {"b": "\x00"}], "n": 2.5}
    assert without_nul(event) == {"a\ufffd": ["x\ufffdy", 1, None, True, {"b": "\ufffd"}], "n": 2.5}
    assert event["a\x00"][0] == "x\x00y"  # a copy: the original is left as it was


def test_without_nul_replaces_lone_surrogates_and_keeps_pairs() -> None:
    """A lone surrogate (JSON can escape one) is no UTF-8: storing it raised UnicodeEncodeError in every driver."""
    from apertur.core.validation import without_nul

    event = loads_json(r'{"id": "evt_\ud800", "\udc00": ["a\udfffb", "\ud83d\ude00"]}')
    assert without_nul(event) == {"id": "evt_\ufffd", "\ufffd": ["a\ufffdb", "\U0001f600"]}
    assert without_nul(event)["id"].encode("utf-8") == "evt_\ufffd".encode()
