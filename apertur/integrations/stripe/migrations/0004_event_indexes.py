"""Stripe events' indexes (issue 10): the waiting events in retry order, a partial index every processed delivery
reads (``services.retry_waiting`` read the whole table: 0.55 s a delivery at 3 M events), and the events by time for
the admin's list.

Built online on PostgreSQL (``CONCURRENTLY``, outside a transaction: deliveries keep being stored while the table is
indexed), as the ledger's (commissions ``0006``)."""

from django.db import migrations, models

from apertur.core.schema import AddIndexOnline


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("stripe_billing", "0003_invoice_payment_links"),
    ]

    operations = [
        AddIndexOnline(
            model_name="stripeevent",
            index=models.Index(
                condition=models.Q(("status", "waiting")), fields=["created", "id"], name="stripe_event_waiting"
            ),
        ),
        AddIndexOnline(
            model_name="stripeevent",
            index=models.Index(fields=["created", "id"], name="stripe_event_created"),
        ),
    ]
