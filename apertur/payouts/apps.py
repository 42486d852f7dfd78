from django.apps import AppConfig


class PayoutsConfig(AppConfig):
    name = "apertur.payouts"
    label = "payouts"
