"""``Payout.processing_since``: since when PayPal has had the payout to process (services.alert_processing). A payout
sent or processing when this runs has had it since it was sent."""

from typing import Any

from django.db import migrations, models


def since_sent(apps: Any, schema_editor: Any) -> None:
    Payout = apps.get_model("payouts", "Payout")
    Payout.objects.filter(status__in=["sent", "pending"], sent_at__isnull=False).update(
        processing_since=models.F("sent_at")
    )


class Migration(migrations.Migration):
    dependencies = [
        ("payouts", "0010_processing_alert"),
    ]

    operations = [
        migrations.AddField(
            model_name="payout",
            name="processing_since",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(since_sent, migrations.RunPython.noop),
    ]
