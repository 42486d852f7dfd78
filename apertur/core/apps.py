from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apertur.core"
    label = "core"

    def ready(self) -> None:
        from apertur.core import checks  # noqa: F401 - registers the deployment checks
