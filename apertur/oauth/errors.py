from apertur.core.errors import LimitReached, NotFound, ValidationFailed


class InvalidAppInput(ValidationFailed):
    code = "invalid_app"


class AppNotFound(NotFound):
    code = "app_not_found"
    default_message = "There is no such OAuth app."


class ConfirmationRequired(ValidationFailed):
    code = "confirmation_required"
    default_message = "Type the app's name to confirm."


class AppLimitReached(LimitReached):
    default_message = "You have reached the limit of OAuth apps per partner."
