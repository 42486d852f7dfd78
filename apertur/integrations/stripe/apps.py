from django.apps import AppConfig


class StripeConfig(AppConfig):
    name = "apertur.integrations.stripe"
    label = "stripe_billing"
    verbose_name = "Stripe billing events"

    def ready(self) -> None:
        from apertur.integrations.stripe import checks  # noqa: F401 - registers the deployment check
