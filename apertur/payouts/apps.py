from django.apps import AppConfig


class PayoutsConfig(AppConfig):
    name = "apertur.payouts"
    label = "payouts"

    def ready(self) -> None:
        from apertur.commissions import payability
        from apertur.payouts import schedule, selectors

        # The commissions dashboard's "Next payout" card says when the run will pay nothing (payouts reads
        # commissions, not the reverse: the rule is lent, not copied).
        payability.register(selectors.why_not_paid)
        # Which run is next: a run whose date has passed and that was not made yet is (the scheduler catches it up).
        payability.register_late_run(schedule.late_run_at)
