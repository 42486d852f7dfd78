from django.apps import AppConfig


class OAuthConfig(AppConfig):
    name = "apertur.oauth"
    label = "oauth"
    verbose_name = "OAuth"

    def ready(self) -> None:
        from apertur.oauth import token_cache

        token_cache.ready()
