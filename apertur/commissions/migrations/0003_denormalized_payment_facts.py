"""Copy each entry's payment date and customer onto the entry, and index a partner's entries by payment date
with what the dashboard and the payout run read (issue 10: the largest partner's dashboard joined a million
payments); 0004 adds that index and drops two nothing uses. Deploy with the writers stopped (see
docs/deploy.md, "Migrations on deploy"): 0004 makes paid_at required, which code from before 0003 does not set."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def copy_payment_facts(apps, schema_editor):  # type: ignore[no-untyped-def]
    entry = apps.get_model("commissions", "CommissionEntry")
    payment = apps.get_model("projects", "Payment")
    of_payment = payment.objects.filter(pk=OuterRef("payment_id"))
    entry.objects.update(
        paid_at=Subquery(of_payment.values("paid_at")[:1]),
        customer_id=Subquery(of_payment.values("customer_id")[:1]),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("commissions", "0002_partner_notice"),
        ("partners", "0003_payouts_hold"),
        ("projects", "0006_billing_and_attribution"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="commissionentry",
            name="paid_at",
            field=models.DateTimeField(null=True),
        ),
        migrations.AddField(
            model_name="commissionentry",
            name="customer",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.RunPython(copy_payment_facts, migrations.RunPython.noop),
    ]
