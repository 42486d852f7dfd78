from django.apps import AppConfig


class PartnersConfig(AppConfig):
    name = "apertur.partners"
    label = "partners"
