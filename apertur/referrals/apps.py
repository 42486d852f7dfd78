from typing import Any

from django.apps import AppConfig


class ReferralsConfig(AppConfig):
    name = "apertur.referrals"
    label = "referrals"

    def ready(self) -> None:
        from apertur.accounts.signals import when_claimed
        from apertur.partners.signals import partner_approved

        partner_approved.connect(_first_link, dispatch_uid="referrals-first-link-on-approval")
        when_claimed(_claimed, dispatch_uid="referrals-unproven-signup-claimed")


def _first_link(sender: Any, *, partner: Any, **kwargs: Any) -> None:
    """Every approved partner has a referral link to share from the start (docs/commissions.md), however it was
    approved: the staff review page, the admin, the CLI or the demo."""
    from apertur.referrals.services import ensure_default_link

    ensure_default_link(partner=partner)


def _claimed(*, user: Any) -> list[Any]:
    """An account that never proved its mailbox, claimed through a password reset by whoever reads that mailbox:
    the signup that carried a referral may not have been theirs (services.drop_unproven_referral). Nothing to list
    for the owner: the referral was a partner's, not something the account set up."""
    from apertur.referrals.services import drop_unproven_referral

    drop_unproven_referral(customer=user)
    return []
