from __future__ import annotations

import html
from typing import Any

from django import forms
from django.forms.utils import flatatt
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from apertur.commissions.selectors import EarningFilters, EarningSort, EarningStatus


def _escape(value: Any) -> str:
    """``conditional_escape`` without its lazy-string wrapper (the same text: Django escapes with html.escape)."""
    return value.__html__() if hasattr(value, "__html__") else html.escape(str(value))


class ManyOptionsSelect(forms.Select):
    """A ``<select>`` whose options are rendered in Python. Django renders every ``<option>`` through a template
    of its own (tens of µs each): for the largest partner's customer filter (thousands of customers) that cost
    more than every query of the dashboard together. Same markup as ``forms.Select`` for flat choices
    (tested); every value and label escaped as ``conditional_escape`` does."""

    def render(self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None) -> SafeString:
        final = self.build_attrs(self.attrs, attrs)
        final["name"] = name
        selected = set(self.format_value(value))
        # One f-string per option rather than format_html: 1 ms for 1,812 options instead of 10.
        options = "".join(
            f'<option value="{_escape(v)}"{" selected" if str(v) in selected else ""}>{_escape(label)}</option>'
            for v, label in self.choices
        )
        return format_html("<select{}>{}</select>", flatatt(final), mark_safe(options))  # noqa: S308 - each value and label escaped


class EarningFilterForm(forms.Form):
    """The dashboard's GET filters: ``from``, ``to``, ``customer``, ``status``, ``sort``. Always bound
    (every field is optional); a field that does not parse is reported and left out of the filters."""

    to = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    customer = forms.CharField(label="Customer", max_length=254, required=False, widget=ManyOptionsSelect)
    status = forms.ChoiceField(label="Status", required=False, choices=[("", "All statuses"), *EarningStatus.choices])
    sort = forms.ChoiceField(label="Sort", required=False, choices=EarningSort.choices)

    def __init__(self, data: Any, *, customers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(data)
        # "from" is a Python keyword, so this field cannot be declared on the class.
        date_from = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
        self.fields = {"from": date_from, **self.fields}
        choices = [("", "All customers"), *(customers or [])]
        current = str(self.data.get("customer", "")).strip()
        if current and current not in {value for value, _ in choices}:
            choices.append((current, current))  # a label typed into the URL stays visible in the form
        self.fields["customer"].widget.choices = choices

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("from"), cleaned.get("to")
        if start and end and end < start:
            self.add_error("to", "The end date is before the start date.")
        return cleaned

    def filters(self) -> EarningFilters:
        """The filters that parsed (call after ``is_valid()``)."""
        data = getattr(self, "cleaned_data", {})
        return EarningFilters(
            date_from=data.get("from"),
            date_to=data.get("to"),
            customer=data.get("customer") or "",
            status=data.get("status") or "",
            sort=data.get("sort") or EarningSort.NEWEST,
        )
