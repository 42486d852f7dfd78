from __future__ import annotations

from typing import Any

from django import forms

from apertur.commissions.selectors import EarningFilters, EarningSort, EarningStatus


class EarningFilterForm(forms.Form):
    """The dashboard's GET filters: ``from``, ``to``, ``customer``, ``status``, ``sort``. Always bound
    (every field is optional); a field that does not parse is reported and left out of the filters."""

    to = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    customer = forms.CharField(label="Customer", max_length=254, required=False, widget=forms.Select)
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
