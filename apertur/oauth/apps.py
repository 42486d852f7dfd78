from django.apps import AppConfig


class OAuthConfig(AppConfig):
    name = "apertur.oauth"
    label = "oauth"
    verbose_name = "OAuth"

    def ready(self) -> None:
        from apertur.core import housekeeping
        from apertur.oauth import services, token_cache

        token_cache.ready()
        housekeeping.register("previous_client_secrets", services.clear_expired_previous_secrets)
