"""Money is integer cents with a currency; every conversion and percentage is rounded here and
nowhere else (ROUND_HALF_UP, ARCHITECTURE section 5)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CAD = "CAD"


class MoneyError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Money:
    cents: int
    currency: str = CAD

    def __post_init__(self) -> None:
        if not isinstance(self.cents, int) or isinstance(self.cents, bool):
            raise MoneyError("Money amounts are integer cents.")
        if not (len(self.currency) == 3 and self.currency.isascii() and self.currency.isupper()):
            raise MoneyError(f"A currency is an ISO 4217 code like CAD, not {self.currency!r}.")

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.cents + other.cents, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.cents - other.cents, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.cents, self.currency)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise MoneyError(f"Cannot combine {self.currency} with {other.currency}.")

    def format(self) -> str:
        """``$1,234.50 CAD`` — for people, never for arithmetic."""
        sign = "-" if self.cents < 0 else ""
        whole, part = divmod(abs(self.cents), 100)
        return f"{sign}${whole:,}.{part:02d} {self.currency}"


def round_half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def percent_of(amount: Money, percent: Decimal | int | str) -> Money:
    """``percent`` % of ``amount``, rounded half up to the cent (10 % of 24,999 → 2,500)."""
    rate = Decimal(percent)
    if rate == rate.to_integral_value():
        # A whole percentage (the 10 % commission, once per payment in the ledger): exact integer arithmetic,
        # half away from zero like ROUND_HALF_UP, without building Decimals (tests compare both paths).
        product = amount.cents * int(rate)
        whole, rest = divmod(abs(product), 100)
        cents = whole + (1 if rest * 2 >= 100 else 0)
        return Money(cents if product >= 0 else -cents, amount.currency)
    return Money(round_half_up(Decimal(amount.cents) * rate / Decimal(100)), amount.currency)


def convert(amount: Money, *, to: str, rate: Decimal | str) -> Money:
    """Convert with an explicit rate (units of ``to`` per unit of ``amount.currency``), half up."""
    if amount.currency == to:
        return amount
    return Money(round_half_up(Decimal(amount.cents) * Decimal(rate)), to)


def format_cents(cents: int, currency: str = CAD) -> str:
    return Money(cents, currency).format()


def decimal_string(cents: int) -> str:
    """Integer cents as a plain decimal string for files and APIs, exactly: 7000 → ``70.00``, -250 → ``-2.50``."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d}"
