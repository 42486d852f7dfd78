from django.apps import AppConfig


class StripeConfig(AppConfig):
    name = "apertur.integrations.stripe"
    label = "stripe_billing"
    verbose_name = "Stripe billing events"

    def ready(self) -> None:
        from apertur.core import housekeeping
        from apertur.integrations.stripe import checks  # noqa: F401 - registers the deployment check
        from apertur.integrations.stripe.services import prune_refused, retry_waiting_pass

        # Waiting events are retried after every processed delivery; this pass also retries (and, past their week,
        # gives up on) them when no delivery comes.
        housekeeping.register("stripe_waiting_events", retry_waiting_pass)
        housekeeping.register("stripe_refused_deliveries", prune_refused)
