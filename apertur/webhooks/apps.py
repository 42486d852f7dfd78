from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "apertur.webhooks"
    label = "webhooks"

    def ready(self) -> None:
        from apertur.core import housekeeping
        from apertur.webhooks import services

        housekeeping.register("previous_signing_secrets", services.clear_expired_previous_secrets)
        housekeeping.register("overdue_webhook_deliveries", services.requeue_overdue)
