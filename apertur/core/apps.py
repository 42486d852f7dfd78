from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apertur.core"
    label = "core"
