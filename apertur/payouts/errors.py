from apertur.core.errors import Conflict, NotFound, ValidationFailed


class PayoutNotRetryable(Conflict):
    code = "payout_not_retryable"
    default_message = "Only a failed or returned payout can be retried."


class PartnerNotPayable(Conflict):
    code = "partner_not_payable"
    default_message = "The partner cannot be paid now."


class NothingToRetry(Conflict):
    code = "nothing_to_retry"
    default_message = "None of this payout's commissions are left unpaid."


class HoldReasonRequired(ValidationFailed):
    code = "reason_required"
    default_message = "Give a reason for the hold: the partner's history keeps it."


class InvalidPeriod(ValidationFailed):
    code = "invalid_period"
    default_message = "A period is YYYY-MM."


class RunNotDue(Conflict):
    code = "run_not_due"
    default_message = "This payout run is not due yet."


class PayoutNotFound(NotFound):
    code = "payout_not_found"
    default_message = "No such payout."


class PayoutNotInReview(Conflict):
    code = "payout_not_in_review"
    default_message = "Only a payout that needs review can be resolved."


class ReviewBatchNotFound(Conflict):
    code = "paypal_batch_not_matching"
    default_message = "That PayPal batch does not hold this payout."
