"""Every payout's item id is unique (its own migration: PostgreSQL alters the table after the backfill has
committed)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("payouts", "0003_multi_item_batches"),
    ]

    operations = [
        migrations.AlterField(
            model_name="payout",
            name="sender_item_id",
            field=models.CharField(max_length=64, unique=True),
        ),
    ]
