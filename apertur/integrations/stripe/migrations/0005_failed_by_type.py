"""The failed Stripe events of a type, oldest first: each failure reads the oldest one left to decide whether staff
were told already (``services._apply``). Partial (the few failed rows) and built online on PostgreSQL, as ``0004``."""

from django.db import migrations, models

from apertur.core.schema import AddIndexOnline


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("stripe_billing", "0004_event_indexes"),
    ]

    operations = [
        AddIndexOnline(
            model_name="stripeevent",
            index=models.Index(
                condition=models.Q(("status", "failed")), fields=["type", "created", "id"], name="stripe_event_failed"
            ),
        ),
    ]
