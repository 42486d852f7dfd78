"""No database foreign key from a payout link to its commission entry (issue 10; see ``PayoutEntry.entry``): the
constraint's KEY SHARE lock wrote to every entry a payout run linked. Django keeps refusing to delete a linked
entry (PROTECT), and the ledger is append-only."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("commissions", "0007_paid_derived_from_payouts"),
        ("payouts", "0005_unused_indexes"),
    ]

    operations = [
        migrations.AlterField(
            model_name="payoutentry",
            name="entry",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="payout_links",
                to="commissions.commissionentry",
            ),
        ),
    ]
