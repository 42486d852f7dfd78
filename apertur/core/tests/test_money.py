from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apertur.core.money import Money, MoneyError, convert, exponent, format_cents, percent_of


def test_ten_percent_rounds_half_up() -> None:
    assert percent_of(Money(24_999), 10) == Money(2_500)  # 2,499.9
    assert percent_of(Money(13_712), 10) == Money(1_371)  # 1,371.2
    assert percent_of(Money(5_000), 10) == Money(500)
    assert percent_of(Money(5), 10) == Money(1)  # 0.5 → 1 (half up, not banker's)
    assert percent_of(Money(-5), 10) == Money(-1)  # symmetric away from zero


def test_usd_conversion() -> None:
    assert convert(Money(10_000, "USD"), to="CAD", rate="1.3712") == Money(13_712, "CAD")


def test_zero_decimal_currency_conversion() -> None:
    # Stripe sends ¥10,000 as 10000 (JPY has no minor unit): 10,000 × 0.0093 = 93.00 CAD, not 0.93.
    assert convert(Money(10_000, "JPY"), to="CAD", rate="0.0093") == Money(9_300, "CAD")
    assert percent_of(convert(Money(10_000, "JPY"), to="CAD", rate="0.0093"), 10) == Money(930, "CAD")
    # And the other way: 1.00 CAD at 107.5 JPY per CAD is ¥107.5, rounded half up to ¥108.
    assert convert(Money(100, "CAD"), to="JPY", rate="107.5") == Money(108, "JPY")


def test_three_decimal_currency_conversion() -> None:
    # 1.000 KWD is 1000 fils: at 4.4 CAD per KWD, 4.40 CAD.
    assert convert(Money(1_000, "KWD"), to="CAD", rate="4.4") == Money(440, "CAD")
    assert convert(Money(1_005, "KWD"), to="CAD", rate="1") == Money(101, "CAD")  # 100.5 → 101, half up


def test_conversion_rounds_half_up() -> None:
    assert convert(Money(5, "JPY"), to="CAD", rate="0.001") == Money(1, "CAD")  # 0.5 cent → 1
    assert convert(Money(4, "JPY"), to="CAD", rate="0.001") == Money(0, "CAD")  # 0.4 cent → 0
    assert convert(Money(1, "USD"), to="CAD", rate="1.5") == Money(2, "CAD")  # 1.5 → 2
    assert convert(Money(-1, "USD"), to="CAD", rate="1.5") == Money(-2, "CAD")  # away from zero


def test_exponents() -> None:
    assert [exponent(c) for c in ("CAD", "usd", "JPY", "krw", "XOF", "KWD", "TND", "ISK")] == [2, 2, 0, 0, 0, 3, 3, 2]


def test_money_refuses_floats_and_mixed_currencies() -> None:
    with pytest.raises(MoneyError):
        Money(1.5)  # type: ignore[arg-type]
    with pytest.raises(MoneyError):
        Money(1, "CAD") + Money(1, "USD")


def test_format() -> None:
    assert format_cents(123_456) == "$1,234.56 CAD"
    assert format_cents(-50) == "-$0.50 CAD"
    assert format_cents(10_000, "JPY") == "10,000 JPY"  # not $100.00
    assert format_cents(-1_250, "KWD") == "-1.250 KWD"
    assert format_cents(10_000, "USD") == "$100.00 USD"
    # Only a dollar is "$": a payment in euros or pounds was shown as "$12.50 EUR".
    assert format_cents(1_250, "EUR") == "12.50 EUR"
    assert format_cents(-1_234_567, "GBP") == "-12,345.67 GBP"
    assert format_cents(1_250, "AUD") == "$12.50 AUD"


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_percent_is_within_half_a_cent(cents: int) -> None:
    exact = Decimal(cents) / 10
    assert abs(Decimal(percent_of(Money(cents), 10).cents) - exact) <= Decimal("0.5")


@given(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.one_of(st.integers(min_value=-300, max_value=300), st.sampled_from(["10", "10.0", Decimal("25.00")])),
)
def test_whole_percent_fast_path_matches_decimal_rounding(cents: int, percent: int | str | Decimal) -> None:
    # The integer path for whole percentages gives exactly what Decimal ROUND_HALF_UP gives.
    from decimal import ROUND_HALF_UP

    exact = (Decimal(cents) * Decimal(percent) / Decimal(100)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    assert percent_of(Money(cents), percent) == Money(int(exact))


def test_fractional_percent_keeps_the_decimal_path() -> None:
    assert percent_of(Money(1_000), "2.5") == Money(25)
    assert percent_of(Money(15), "2.5") == Money(0)  # 0.375 → 0
    assert percent_of(Money(20), "2.5") == Money(1)  # 0.5 → 1
    assert percent_of(Money(-20), "2.5") == Money(-1)
