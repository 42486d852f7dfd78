"""CommissionEntry.paid_at required, and the indexes of 0003 (a migration of its own: on PostgreSQL the
backfill's deferred foreign-key checks must be committed before the table is altered)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("commissions", "0003_denormalized_payment_facts"),
    ]

    operations = [
        migrations.AlterField(
            model_name="commissionentry",
            name="paid_at",
            field=models.DateTimeField(),
        ),
        migrations.RemoveIndex(
            model_name="commissionentry",
            name="commissions_partner_3b828f_idx",
        ),
        migrations.AddIndex(
            model_name="commissionentry",
            index=models.Index(
                fields=["partner", "paid_at"],
                include=["available_at", "amount_cents", "paid_out_at", "kind", "customer", "payment"],
                name="commission_partner_paid_at",
            ),
        ),
        migrations.AlterField(
            model_name="commissionentry",
            name="partner",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="commission_entries",
                to="partners.partner",
            ),
        ),
        migrations.AlterField(
            model_name="commissionentry",
            name="source_key",
            field=models.CharField(max_length=120),
        ),
        migrations.AddConstraint(
            model_name="commissionentry",
            constraint=models.UniqueConstraint(fields=("source_key",), name="commission_entry_source_key_unique"),
        ),
    ]
