"""Partners approved before approval created the first referral link (partners.signals.partner_approved) get it now,
as ``referrals.services.ensure_default_link`` would: one link labelled "Default" for each approved partner without
any link, and each suspended one (approved before, and approved again when restored)."""

from django.db import migrations

from apertur.core import clock
from apertur.referrals.models import new_referral_code


def first_links(apps, schema_editor):
    Partner = apps.get_model("partners", "Partner")
    ReferralLink = apps.get_model("referrals", "ReferralLink")
    now = clock.now()
    for partner_id in (
        Partner.objects.filter(status__in=["approved", "suspended"], referral_links__isnull=True).values_list("pk", flat=True).iterator()
    ):
        ReferralLink.objects.create(partner_id=partner_id, label="Default", code=new_referral_code(), created_at=now)


class Migration(migrations.Migration):
    dependencies = [
        ("partners", "0003_payouts_hold"),
        ("referrals", "0002_billing_and_attribution"),
    ]

    operations = [migrations.RunPython(first_links, migrations.RunPython.noop)]
