"""Money is integer cents with a currency; every conversion and percentage is rounded here and
nowhere else (ROUND_HALF_UP, ARCHITECTURE section 5).

"Cents" means the currency's minor unit, as Stripe counts amounts: a hundredth for most currencies, but
the unit itself for zero-decimal ones (¥10,000 is ``10000``) and a thousandth for three-decimal ones
(1.000 KWD is ``1000``). :func:`exponent` says which."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CAD = "CAD"

# Minor-unit exponents that differ from 2, as Stripe's amounts use them (https://docs.stripe.com/currencies,
# "Zero-decimal currencies" and "Three-decimal currencies"; these match ISO 4217's minor units). No library
# in the environment carries ISO 4217 exponents (babel, py-moneyed are not dependencies), and Stripe's own
# lists are what its ``amount`` fields follow: ISK, for one, is zero-decimal in ISO 4217 but Stripe still
# sends it with two decimals, so it is not listed here.
ZERO_DECIMAL = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"}
)
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
# The currencies named "dollar" (ISO 4217), the ones a "$" in front of the amount means. Any other currency is
# shown by its code alone: "$12.50 EUR" said dollars and euros at once.
DOLLARS = frozenset(
    {"AUD", "BBD", "BMD", "BND", "BSD", "BZD", "CAD", "FJD", "GYD", "HKD", "JMD", "KYD", "LRD", "NAD", "NZD", "SBD"}
    | {"SGD", "SRD", "TTD", "TWD", "USD", "XCD"}
)


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
        """``$1,234.50 CAD``, ``12.50 EUR``, ``10,000 JPY``, ``1.250 KWD`` — for people, never for arithmetic."""
        sign = "-" if self.cents < 0 else ""
        places = exponent(self.currency)
        whole, part = divmod(abs(self.cents), 10**places)
        symbol = "$" if self.currency in DOLLARS else ""
        decimals = f".{part:0{places}d}" if places else ""
        return f"{sign}{symbol}{whole:,}{decimals} {self.currency}"


def exponent(currency: str) -> int:
    """How many decimal places the currency's minor unit has (0 for JPY, 3 for KWD, else 2)."""
    code = currency.upper()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


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
    """Convert with an explicit rate (major units of ``to`` per major unit of ``amount.currency``, as rate
    tables and Stripe's ``exchange_rate`` give it), rounded half up to ``to``'s minor unit. The rate is per
    major unit, the amounts are in minor units: ¥10,000 (``10000``, no minor unit) at 0.0093 is 93.00 CAD,
    ``9300`` cents, so the minor units are shifted by the difference of the two exponents (exactly)."""
    if amount.currency == to:
        return amount
    shift = exponent(to) - exponent(amount.currency)
    return Money(round_half_up(Decimal(amount.cents) * Decimal(rate).scaleb(shift)), to)


def format_cents(cents: int, currency: str = CAD) -> str:
    return Money(cents, currency).format()


def decimal_string(cents: int) -> str:
    """Integer cents as a plain decimal string for files and APIs, exactly: 7000 → ``70.00``, -250 → ``-2.50``."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d}"
