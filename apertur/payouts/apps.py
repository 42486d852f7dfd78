from django.apps import AppConfig


class PayoutsConfig(AppConfig):
    name = "apertur.payouts"
    label = "payouts"

    def ready(self) -> None:
        from apertur.commissions import payability
        from apertur.payouts import selectors

        # The commissions dashboard's "Next payout" card says when the run will pay nothing (payouts reads
        # commissions, not the reverse: the rule is lent, not copied).
        payability.register(selectors.why_not_paid)
