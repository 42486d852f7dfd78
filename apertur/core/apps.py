from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apertur.core"
    label = "core"

    def ready(self) -> None:
        from django.conf import settings

        from apertur.core import checks  # noqa: F401 - registers the deployment checks
        from apertur.core.logs import redact_secret_paths

        redact_secret_paths(tuple(settings.SECRET_PATH_PREFIXES))
