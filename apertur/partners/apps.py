from django.apps import AppConfig


class PartnersConfig(AppConfig):
    name = "apertur.partners"
    label = "partners"

    def ready(self) -> None:
        from apertur.accounts.signals import when_claimed
        from apertur.partners import paypal

        # An account claimed from whoever signed up with its address: no payout to a PayPal address they set.
        when_claimed(paypal.clear_for_claimed_account, dispatch_uid="partners-unproven-signup-claimed")
