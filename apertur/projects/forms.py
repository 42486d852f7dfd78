from django import forms

from apertur.projects.models import Project


class ProjectForm(forms.Form):
    name = forms.CharField(label="Project name", max_length=100)


def _whole_number(*, label: str, placeholder: str, help_text: str) -> forms.IntegerField:
    # A text box, not <input type=number>: a number box sends "" for what it cannot read ("ten"), which here
    # means "no default" and would clear the setting instead of saying what is wrong.
    return forms.IntegerField(
        label=label,
        required=False,
        show_hidden_initial=True,
        help_text=help_text,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "placeholder": placeholder}),
    )


class ProjectSettingsForm(forms.Form):
    """The owner's Settings page. Its fields only read what was typed (a whole number, a ticked box); every rule
    about a project's settings is the service's (``services.clean_settings``, through ``update_settings``), shown
    by its field. ``required`` and ``maxlength`` below are hints for the browser and screen readers (the page's
    form is ``novalidate``), not rules. Each field carries the value the page was opened with
    (``show_hidden_initial``): a save sends the service only what the owner changed, so a setting a connected app
    changed meanwhile is not written back over."""

    name = forms.CharField(
        label="Project name",
        required=False,
        show_hidden_initial=True,
        strip=False,  # the service tidies spaces, as it does for the API
        widget=forms.TextInput(attrs={"maxlength": Project._meta.get_field("name").max_length, "required": True}),
    )
    description = forms.CharField(
        label="Description",
        required=False,
        show_hidden_initial=True,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 3, "maxlength": Project._meta.get_field("description").max_length}),
        help_text="A note about the project: apps you connect can read it; guests do not see it.",
    )
    default_session_days = _whole_number(
        label="Default link expiry (days)",
        placeholder="never",
        help_text="New upload links expire this many days after they are made, unless one says otherwise. "
        "Leave empty for links that do not expire.",
    )
    default_max_files = _whole_number(
        label="Default max files",
        placeholder="no limit",
        help_text="How many files a new upload link accepts, unless one says otherwise. Leave empty for no limit.",
    )
    notify_owner_on_upload = forms.BooleanField(
        label="Email me when a guest uploads",
        required=False,
        show_hidden_initial=True,
        help_text="One email per photo uploaded through a live upload link (test-mode uploads send none).",
    )
