from django.apps import AppConfig


class StripeConfig(AppConfig):
    name = "apertur.integrations.stripe"
    label = "stripe_billing"
    verbose_name = "Stripe billing events"
