from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "apertur.webhooks"
    label = "webhooks"

    def ready(self) -> None:
        from apertur.core import housekeeping
        from apertur.webhooks import services

        housekeeping.register("previous_signing_secrets", services.clear_expired_previous_secrets)
        housekeeping.register("overdue_webhook_deliveries", services.requeue_overdue)
        housekeeping.register("old_webhook_events", services.prune_old_events)

        from apertur.oauth.signals import app_lost_project

        # An endpoint an app created stops with the app's access to the project (disconnected, or the app deleted).
        app_lost_project.connect(
            services.disable_endpoints_of_app, dispatch_uid="webhooks-disable-endpoints-of-app", weak=False
        )

        from apertur.projects.signals import plan_changed

        # A project's new plan is told to its endpoints (``plan.changed``) by its own change's transaction.
        plan_changed.connect(services.emit_plan_changed, dispatch_uid="webhooks-emit-plan-changed", weak=False)
