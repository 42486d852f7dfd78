"""Payouts become items of shared PayPal batches (issue 10, "money at scale"): ``sender_batch_id`` is no longer
unique (the run sends up to ``PAYOUT_BATCH_SIZE`` payouts in one batch) and each payout gets its own
``sender_item_id``. Payouts sent before this migration were sent as ``<sender_batch_id>-1``: that is their item id."""

from django.db import migrations, models
from django.db.models import Value
from django.db.models.functions import Concat


def backfill_item_ids(apps, schema_editor):  # type: ignore[no-untyped-def]
    Payout = apps.get_model("payouts", "Payout")
    Payout.objects.filter(sender_item_id="").update(sender_item_id=Concat("sender_batch_id", Value("-1")))


class Migration(migrations.Migration):
    dependencies = [
        ("payouts", "0002_reconciliation"),
    ]

    operations = [
        migrations.AlterField(
            model_name="payout",
            name="sender_batch_id",
            field=models.CharField(db_index=True, max_length=64),
        ),
        migrations.AddField(
            model_name="payout",
            name="sender_item_id",
            field=models.CharField(default="", max_length=64),
            preserve_default=False,
        ),
        migrations.RunPython(backfill_item_ids, migrations.RunPython.noop),
    ]
