from django.apps import AppConfig


class UploadsConfig(AppConfig):
    name = "apertur.uploads"
    label = "uploads"
