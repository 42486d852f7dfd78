from typing import Any

from django.apps import AppConfig


class OAuthConfig(AppConfig):
    name = "apertur.oauth"
    label = "oauth"
    verbose_name = "OAuth"

    def ready(self) -> None:
        from apertur.accounts.signals import mailbox_proven
        from apertur.core import housekeeping
        from apertur.oauth import services, token_cache

        token_cache.ready()
        housekeeping.register("previous_client_secrets", services.clear_expired_previous_secrets)
        mailbox_proven.connect(_claimed, dispatch_uid="oauth-unproven-signup-claimed")


def _claimed(sender: Any, *, user: Any, via: str, was_confirmed: bool, **kwargs: Any) -> Any:
    """An account claimed from whoever signed up with its address: their connections and apps stop working."""
    from apertur.accounts.signals import claimed_from_signup

    if not claimed_from_signup(via=via, was_confirmed=was_confirmed):
        return None
    from apertur.oauth.services import turn_off_for_claimed_account

    return turn_off_for_claimed_account(user=user)
