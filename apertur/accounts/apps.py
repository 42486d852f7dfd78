from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "apertur.accounts"
    label = "accounts"
