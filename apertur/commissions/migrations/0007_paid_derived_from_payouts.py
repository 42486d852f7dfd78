"""Whether an entry is paid is derived from the payouts app's links (``commissions.models.paid_entry_ids``: a live
link to a payout with a ``sent_at``) instead of a ``paid_out_at`` column written on every entry the run pays
(issue 10: that write was half of the first payout run's time over a million entries).

Before the column goes, every entry it says paid must be paid by the links and the other way round (the payout
run wrote both in one transaction; money back cleared both): the migration stops, changing nothing, if not. The
covering index is rebuilt without the column, online on PostgreSQL and under a temporary name first, as in 0006.
Deploy the code first, then this migration: the new code neither reads nor writes the column."""

from django.db import migrations, models

from apertur.core.schema import AddIndexOnline, RemoveIndexOnline

COVERED = ("available_at", "amount_cents", "kind", "customer", "payment")

_DISAGREE = """
SELECT count(*) FROM commissions_commissionentry e
WHERE (e.paid_out_at IS NOT NULL) <> EXISTS (
    SELECT 1 FROM payouts_payoutentry l JOIN payouts_payout p ON p.id = l.payout_id
    WHERE l.entry_id = e.id AND l.released_at IS NULL AND p.sent_at IS NOT NULL
)
"""


def check_paid_agrees(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(_DISAGREE)
        (disagree,) = cursor.fetchone()
    if disagree:
        raise RuntimeError(
            f"{disagree} commission entries are marked paid (paid_out_at) where no sent payout links them, or the "
            "other way round; nothing was changed. Reconcile them before migrating (docs/payouts.md)."
        )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("commissions", "0006_dashboard_indexes"),
        ("payouts", "0005_unused_indexes"),
    ]

    operations = [
        migrations.RunPython(check_paid_agrees, migrations.RunPython.noop, elidable=True),
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
        migrations.RemoveField(
            model_name="commissionentry",
            name="paid_out_at",
        ),
    ]
