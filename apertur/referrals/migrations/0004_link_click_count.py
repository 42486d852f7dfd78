"""Each link's ``click_count``, kept by ``referrals.services.record_click`` from now on, starts at the clicks it
already has (one UPDATE with a correlated count: no row is read into Python)."""

from django.db import migrations, models
from django.db.models import Count, OuterRef, Subquery, Value
from django.db.models.functions import Coalesce


def count_existing_clicks(apps, schema_editor):
    ReferralLink = apps.get_model("referrals", "ReferralLink")
    ReferralClick = apps.get_model("referrals", "ReferralClick")
    counted = (
        ReferralClick.objects.filter(link=OuterRef("pk")).order_by().values("link").annotate(n=Count("pk")).values("n")
    )
    ReferralLink.objects.update(click_count=Coalesce(Subquery(counted, output_field=models.BigIntegerField()), Value(0)))


class Migration(migrations.Migration):
    dependencies = [
        ("referrals", "0003_first_link_for_approved_partners"),
    ]

    operations = [
        migrations.AddField(
            model_name="referrallink",
            name="click_count",
            field=models.PositiveBigIntegerField(default=0, editable=False),
        ),
        migrations.RunPython(count_existing_clicks, migrations.RunPython.noop),
    ]
