from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apertur.core.money import Money, MoneyError, convert, format_cents, percent_of


def test_ten_percent_rounds_half_up() -> None:
    assert percent_of(Money(24_999), 10) == Money(2_500)  # 2,499.9
    assert percent_of(Money(13_712), 10) == Money(1_371)  # 1,371.2
    assert percent_of(Money(5_000), 10) == Money(500)
    assert percent_of(Money(5), 10) == Money(1)  # 0.5 → 1 (half up, not banker's)
    assert percent_of(Money(-5), 10) == Money(-1)  # symmetric away from zero


def test_usd_conversion() -> None:
    assert convert(Money(10_000, "USD"), to="CAD", rate="1.3712") == Money(13_712, "CAD")


def test_money_refuses_floats_and_mixed_currencies() -> None:
    with pytest.raises(MoneyError):
        Money(1.5)  # type: ignore[arg-type]
    with pytest.raises(MoneyError):
        Money(1, "CAD") + Money(1, "USD")


def test_format() -> None:
    assert format_cents(123_456) == "$1,234.56 CAD"
    assert format_cents(-50) == "-$0.50 CAD"


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_percent_is_within_half_a_cent(cents: int) -> None:
    exact = Decimal(cents) / 10
    assert abs(Decimal(percent_of(Money(cents), 10).cents) - exact) <= Decimal("0.5")
