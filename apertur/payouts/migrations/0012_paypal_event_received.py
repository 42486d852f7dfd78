"""PayPal events by time, newest first, for the admin's list: without an index each load sorted every event (kept
forever; 0.6 s at 400,000). Built online on PostgreSQL (``CONCURRENTLY``, outside a transaction: webhooks keep being
stored while it builds), as Stripe's (``stripe_billing.0004``)."""

from django.db import migrations, models

from apertur.core.schema import AddIndexOnline


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("payouts", "0011_processing_since"),
    ]

    operations = [
        AddIndexOnline(
            model_name="paypalevent",
            index=models.Index(fields=["received_at", "id"], name="paypal_event_received"),
        ),
    ]
