from django.apps import AppConfig


class UploadsConfig(AppConfig):
    name = "apertur.uploads"
    label = "uploads"

    def ready(self) -> None:
        from apertur.accounts.signals import when_claimed
        from apertur.uploads import services

        # An account claimed from whoever signed up with its address: its uploads and events stop going where
        # that person pointed them.
        when_claimed(services.turn_off_deliveries_of_claimed_account, dispatch_uid="uploads-unproven-signup-claimed")
