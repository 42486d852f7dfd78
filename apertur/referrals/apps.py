from django.apps import AppConfig


class ReferralsConfig(AppConfig):
    name = "apertur.referrals"
    label = "referrals"
