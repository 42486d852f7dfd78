"""PayoutEntry without its two plain foreign-key indexes: the unique (payout, entry) index and the partial unique
index on live entries serve every lookup, and each index costs every link a payout run writes.

The indexes are dropped by name, not by altering the fields: Django's schema editor, removing ``db_index`` from
``entry``, also drops every other single-column index on ``entry_id`` it finds, and on PostgreSQL that includes
the partial unique index ``entry_in_one_live_payout`` (the rule that an entry is in one live payout at most)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("commissions", "0005_unused_indexes"),
        ("payouts", "0004_sender_item_id_unique"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="payoutentry",
                    name="entry",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="payout_links",
                        to="commissions.commissionentry",
                    ),
                ),
                migrations.AlterField(
                    model_name="payoutentry",
                    name="payout",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="entries",
                        to="payouts.payout",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "payouts_payoutentry_entry_id_049ebb90"',
                    'CREATE INDEX "payouts_payoutentry_entry_id_049ebb90" ON "payouts_payoutentry" ("entry_id")',
                ),
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "payouts_payoutentry_payout_id_628575dc"',
                    'CREATE INDEX "payouts_payoutentry_payout_id_628575dc" ON "payouts_payoutentry" ("payout_id")',
                ),
            ],
        ),
    ]
