import re

from django import forms

# A comma followed by a scheme: two URIs typed on one line (a comma is legal inside one URI, so not split).
_JOINED_URIS = re.compile(r",\s*[A-Za-z][A-Za-z0-9+.-]*://")


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.replace(",", "\n").splitlines() if line.strip()]


class AppForm(forms.Form):
    name = forms.CharField(label="App name", max_length=80)
    description = forms.CharField(label="Description", widget=forms.Textarea(attrs={"rows": 3}), required=False)
    website = forms.CharField(
        label="Website URL",
        max_length=300,
        required=False,
        widget=forms.URLInput(attrs={"placeholder": "https://"}),
    )
    redirect_uris = forms.CharField(
        label="Redirect URIs",
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "https://your-app.com/callback"}),
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
        value: str = self.cleaned_data["redirect_uris"]
        if any(_JOINED_URIS.search(line) for line in value.splitlines()):
            raise forms.ValidationError("Put each redirect URI on its own line: this line holds two URIs.")
        return value

    def redirect_uri_list(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["redirect_uris"].splitlines() if line.strip()]

    def allowed_domain_list(self) -> list[str]:
        return _lines(self.cleaned_data.get("allowed_domains", ""))


class DeleteForm(forms.Form):
    confirm_name = forms.CharField(label="Type the app's name to confirm")
