"""What every form of the site does with a service's refusal."""

from __future__ import annotations

from collections.abc import Collection

from django import forms

from apertur.core.errors import AperturError


def add_problems(form: forms.BaseForm, exc: AperturError, *, skip: Collection[str | None] = ()) -> None:
    """Each problem the service found (it reports all at once: ``exc.problems``) next to its field, one about no
    field of this form above it; those about a field in ``skip`` (one the form has already refused) left out."""
    for problem in exc.problems:
        if problem.field in skip:
            continue
        form.add_error(problem.field if problem.field in form.fields else None, problem.message)
