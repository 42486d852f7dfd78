from apertur.core.errors import AperturError, Conflict, ValidationFailed


class EmailTaken(Conflict):
    code = "email_taken"
    default_message = "An account with this email already exists."


class InvalidPassword(ValidationFailed):
    code = "invalid_password"
    default_message = "This password is not allowed."


class InvalidEmail(ValidationFailed):
    code = "invalid_email"
    default_message = "Enter a valid email address."


class InvalidConfirmationLink(AperturError):
    code = "invalid_confirmation_link"
    status = 400
    default_message = "This confirmation link is invalid or has expired. Request a new one."
