from django.apps import AppConfig


class CommissionsConfig(AppConfig):
    name = "apertur.commissions"
    label = "commissions"
