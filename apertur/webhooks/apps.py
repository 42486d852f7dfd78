from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "apertur.webhooks"
    label = "webhooks"
