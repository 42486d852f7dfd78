from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "apertur.api"
    label = "api"
