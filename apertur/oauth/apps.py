from django.apps import AppConfig


class OAuthConfig(AppConfig):
    name = "apertur.oauth"
    label = "oauth"
    verbose_name = "OAuth"
