from django import template

from apertur.core.money import CAD, format_cents

register = template.Library()


@register.filter
def cents(value: int | None, currency: str = CAD) -> str:
    """``{{ 123450|cents }}`` → ``$1,234.50 CAD``."""
    return format_cents(int(value or 0), currency)
