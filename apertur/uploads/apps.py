from typing import Any

from django.apps import AppConfig


class UploadsConfig(AppConfig):
    name = "apertur.uploads"
    label = "uploads"

    def ready(self) -> None:
        from apertur.accounts.signals import mailbox_proven

        mailbox_proven.connect(_claimed, dispatch_uid="uploads-unproven-signup-claimed")


def _claimed(sender: Any, *, user: Any, via: str, was_confirmed: bool, **kwargs: Any) -> Any:
    """An account claimed from whoever signed up with its address: its uploads and events stop going where
    that person pointed them."""
    from apertur.accounts.signals import claimed_from_signup

    if not claimed_from_signup(via=via, was_confirmed=was_confirmed):
        return None
    from apertur.uploads.services import turn_off_deliveries_of_claimed_account

    return turn_off_deliveries_of_claimed_account(user=user)
