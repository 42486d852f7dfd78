"""Stored addresses in the form ``normalize_email`` now gives them: the domain as the IDNA codec reads it back
(full-width letters as ASCII, invisible characters dropped, accents composed). An account stored in another
spelling could no longer log in, since logins look the typed address up in that form. An address whose new form
another account already has stays as it is (both reach one mailbox: staff decide which account is the owner's)."""

from django.db import migrations

from apertur.accounts.models import normalize_email


def renormalize(apps, schema_editor):
    User = apps.get_model("accounts", "User")
    for user in User.objects.only("email").iterator():
        if user.email.isascii() and user.email == user.email.lower():
            continue
        address = normalize_email(user.email)
        if address != user.email and not User.objects.filter(email=address).exists():
            User.objects.filter(pk=user.pk).update(email=address)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(renormalize, migrations.RunPython.noop),
    ]
