"""CommissionEntry.available_at without an index of its own: no query used it (a partner's lookups read the
covering (partner, paid_at) index, the payout run scans), and every entry written or marked paid updated it.
Dropped by name, as payouts 0005 drops its indexes (the schema editor's field alteration drops more than the
field's own index)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("commissions", "0004_entry_indexes"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="commissionentry",
                    name="available_at",
                    field=models.DateTimeField(),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "commissions_commissionentry_available_at_2f21145a"',
                    'CREATE INDEX "commissions_commissionentry_available_at_2f21145a" '
                    'ON "commissions_commissionentry" ("available_at")',
                ),
            ],
        ),
    ]
