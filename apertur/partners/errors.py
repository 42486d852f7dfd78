from apertur.core.errors import Conflict, PermissionDenied, ValidationFailed


class AlreadyApplied(Conflict):
    code = "partner_already_applied"
    default_message = "You have already applied to the partner program."


class InvalidPartnerTransition(Conflict):
    code = "invalid_partner_status"
    default_message = "This action is not possible in the partner's current status."


class ReasonRequired(ValidationFailed):
    code = "reason_required"
    default_message = "Give a reason: the partner will read it."


class InvalidApplication(ValidationFailed):
    code = "invalid_application"


class PartnerNotApproved(PermissionDenied):
    code = "partner_not_approved"
    default_message = "Only approved partners can use the partner tools."
