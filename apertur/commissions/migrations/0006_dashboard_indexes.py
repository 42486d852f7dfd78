"""The partner dashboard's indexes (issue 10): ``id`` joins the covering index's key (the earnings table's order, and
the payout detail's join to its links, read from the index), and two small partial indexes for the rare entries the
dashboard singles out (reversals and clawbacks; re-earnings of won disputes).

Built online on PostgreSQL (``CONCURRENTLY``, outside a transaction: the ledger keeps taking writes while a million
rows are indexed). The new covering index is built under a temporary name before the old one is dropped, so the
dashboard is never without one; the rename at the end is a catalog change."""

from django.db import migrations, models

from apertur.core.schema import AddIndexOnline, RemoveIndexOnline

COVERED = ("available_at", "amount_cents", "paid_out_at", "kind", "customer", "payment")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("commissions", "0005_unused_indexes"),
    ]

    operations = [
        AddIndexOnline(
            model_name="commissionentry",
            index=models.Index(fields=["partner", "paid_at", "id"], include=COVERED, name="commission_partner_paid_id"),
        ),
        RemoveIndexOnline(
            model_name="commissionentry",
            name="commission_partner_paid_at",
        ),
        migrations.RenameIndex(
            model_name="commissionentry",
            new_name="commission_partner_paid_at",
            old_name="commission_partner_paid_id",
        ),
        AddIndexOnline(
            model_name="commissionentry",
            index=models.Index(
                condition=models.Q(("kind__in", ["reversal", "clawback"])),
                fields=["partner", "payment"],
                name="commission_taken_back",
            ),
        ),
        AddIndexOnline(
            model_name="commissionentry",
            index=models.Index(
                condition=models.Q(("kind", "earned"), models.Q(("source_key__startswith", "earned:"), _negated=True)),
                fields=["partner"],
                name="commission_re_earned",
            ),
        ),
    ]
