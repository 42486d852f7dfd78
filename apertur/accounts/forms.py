from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import forms
from django.contrib.auth.forms import PasswordResetForm, SetPasswordForm
from django.template import loader

from apertur.accounts.models import EMAIL_MAX_LENGTH, normalize_email
from apertur.core import mail


class LoginForm(forms.Form):
    email = forms.EmailField(
        label="Email",
        max_length=EMAIL_MAX_LENGTH,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )
    password = forms.CharField(
        label="Password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )


class SignupForm(forms.Form):
    email = forms.EmailField(
        label="Email",
        max_length=EMAIL_MAX_LENGTH,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )
    password = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 8 characters; not a common password.",
    )


class ConfirmWithPasswordForm(forms.Form):
    """The confirmation link opened where its account is not signed in: the account's password confirms."""

    password = forms.CharField(
        label="Password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )


class ResendConfirmationForm(forms.Form):
    email = forms.EmailField(
        label="Email", max_length=EMAIL_MAX_LENGTH, widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )


def _current_password() -> forms.CharField:
    return forms.CharField(
        label="Current password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


class ChangePasswordForm(forms.Form):
    current_password = _current_password()
    new_password = forms.CharField(
        label="New password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 8 characters; not a common password.",
    )
    new_password_again = forms.CharField(
        label="New password, again",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        first, again = data.get("new_password"), data.get("new_password_again")
        if first and again and first != again:
            self.add_error("new_password_again", "The two new passwords are not the same.")
        return data


class ChangeEmailForm(forms.Form):
    new_email = forms.EmailField(
        label="New email",
        max_length=EMAIL_MAX_LENGTH,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    current_password = _current_password()


class EndSessionsForm(forms.Form):
    current_password = _current_password()


class ResetPasswordForm(SetPasswordForm):
    """The password reset's form with the rules in one line, as on the signup and account pages (Django's help
    text is an HTML list that does not fit the site's field template). Django's labels stay ("New password",
    "New password confirmation"): scripts and tests of a Django reset page find its fields by them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["new_password1"].help_text = "At least 8 characters; not a common password."
        self.fields["new_password2"].help_text = ""


class RequestResetForm(PasswordResetForm):
    """Django's reset request, its mail sent as every other mail of the site (``core.mail.send``): from the no-reply
    sender with ``SUPPORT_EMAIL`` as Reply-To, plain text, after the commit, and a failure logged with the recipient
    and subject for a resend (Django's own logs only the account's id and sets no Reply-To)."""

    def get_users(self, email: str) -> Iterable[Any]:
        # The address as stored (``normalize_email``): a domain typed in another spelling finds its account.
        return super().get_users(normalize_email(email))

    def send_mail(
        self,
        subject_template_name: str,
        email_template_name: str,
        context: dict[str, Any],
        from_email: str | None,
        to_email: str,
        html_email_template_name: str | None = None,
    ) -> None:
        subject = "".join(loader.render_to_string(subject_template_name, context).splitlines())
        mail.send(to=to_email, subject=subject, template=email_template_name.removesuffix(".txt"), context=context)
