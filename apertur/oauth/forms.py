import re
from typing import Any

from django import forms

from apertur.core.errors import AperturError
from apertur.core.forms import add_problems
from apertur.core.validation import MAX_WEBSITE_LENGTH
from apertur.oauth.models import APP_NAME_MAX_LENGTH
from apertur.oauth.services import clean_app_details

# A comma followed by a scheme: two URIs typed on one line (a comma is legal inside one URI, so not split).
_JOINED_URIS = re.compile(r",\s*[A-Za-z][A-Za-z0-9+.-]*://")


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.replace(",", "\n").splitlines() if line.strip()]


class AppForm(forms.Form):
    """The New OAuth App and Edit settings form. Its fields only read what was typed; every rule about an app's
    settings is the service's (``services.clean_app_details``), asked in :meth:`clean` so that every problem
    shows in one answer, each by its field. ``required`` and ``maxlength`` below are hints for the browser and
    screen readers (the page's form is ``novalidate``), not rules."""

    name = forms.CharField(
        label="App name",
        required=False,
        widget=forms.TextInput(attrs={"maxlength": APP_NAME_MAX_LENGTH, "required": True}),
    )
    description = forms.CharField(label="Description", widget=forms.Textarea(attrs={"rows": 3}), required=False)
    website = forms.CharField(
        label="Website URL",
        required=False,
        widget=forms.URLInput(attrs={"placeholder": "https://", "maxlength": MAX_WEBSITE_LENGTH}),
    )
    redirect_uris = forms.CharField(
        label="Redirect URIs",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "https://your-app.com/callback", "required": True}),
        help_text="One per line. Must use https, except localhost, *.localhost, 127.0.0.1 and [::1].",
    )
    allowed_domains = forms.CharField(
        label="Allowed domains",
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "example.com\n*.example.com"}),
        required=False,
        help_text=(
            "One per line: example.com, *.example.com or *.localhost. "
            "Leave empty to allow every origin during development."
        ),
    )

    def clean_redirect_uris(self) -> str:
        # How the box is read (one URI per line), not a rule about URIs: the service never sees lines.
        value: str = self.cleaned_data["redirect_uris"]
        if any(_JOINED_URIS.search(line) for line in value.splitlines()):
            raise forms.ValidationError("Put each redirect URI on its own line: this line holds two URIs.")
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        unreadable = set(self.errors)  # a field the form could not read already says why
        try:
            clean_app_details(
                name=data.get("name", ""),
                description=data.get("description", ""),
                website=data.get("website", ""),
                redirect_uris=self.redirect_uri_list(),
                allowed_domains=self.allowed_domain_list(),
            )
        except AperturError as exc:
            add_problems(self, exc, skip=unreadable)
        return data

    def redirect_uri_list(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data.get("redirect_uris", "").splitlines() if line.strip()]

    def allowed_domain_list(self) -> list[str]:
        return _lines(self.cleaned_data.get("allowed_domains", ""))


class DeleteForm(forms.Form):
    # Not required here: the service (``services.delete_app``) says what to type, empty or wrong, in one message.
    confirm_name = forms.CharField(
        label="Type the app's name to confirm", required=False, widget=forms.TextInput(attrs={"required": True})
    )
