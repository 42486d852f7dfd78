from typing import Any

from django.apps import AppConfig


class PartnersConfig(AppConfig):
    name = "apertur.partners"
    label = "partners"

    def ready(self) -> None:
        from apertur.accounts.signals import mailbox_proven

        mailbox_proven.connect(_claimed, dispatch_uid="partners-unproven-signup-claimed")


def _claimed(sender: Any, *, user: Any, via: str, was_confirmed: bool, **kwargs: Any) -> Any:
    """An account claimed from whoever signed up with its address: no payout to a PayPal address they set."""
    from apertur.accounts.signals import claimed_from_signup

    if not claimed_from_signup(via=via, was_confirmed=was_confirmed):
        return None
    from apertur.partners.paypal import clear_for_claimed_account

    return clear_for_claimed_account(user=user)
