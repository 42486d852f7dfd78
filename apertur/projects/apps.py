from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "apertur.projects"
    label = "projects"
