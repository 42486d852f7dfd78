from typing import Any

from django.apps import AppConfig


class ReferralsConfig(AppConfig):
    name = "apertur.referrals"
    label = "referrals"

    def ready(self) -> None:
        from apertur.partners.signals import partner_approved

        partner_approved.connect(_first_link, dispatch_uid="referrals-first-link-on-approval")


def _first_link(sender: Any, *, partner: Any, **kwargs: Any) -> None:
    """Every approved partner has a referral link to share from the start (docs/commissions.md), however it was
    approved: the staff review page, the admin, the CLI or the demo."""
    from apertur.referrals.services import ensure_default_link

    ensure_default_link(partner=partner)
