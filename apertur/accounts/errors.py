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
    # The same words whether or not the account's email is confirmed already: the page must not tell a
    # stranger holding a guessed or old link which accounts are confirmed.
    default_message = "This link is no longer valid: it has expired, or it was already used."


class InvalidResetLink(AperturError):
    code = "invalid_reset_link"
    status = 400
    default_message = "This reset link is invalid, already used or expired."


class WrongPassword(ValidationFailed):
    code = "wrong_password"
    default_message = "Your current password is not correct."


class InvalidEmailChangeLink(AperturError):
    code = "invalid_email_change_link"
    status = 400
    default_message = (
        "This link is no longer valid: it has expired, it was already used, or the account's email address has "
        "changed since it was sent."
    )


class ConfirmationNeedsLogin(AperturError):
    """A valid confirmation link opened by a browser that is not signed in to its account. Signup proves nothing
    about the address: whoever signed up may not own it, and the owner's click must not confirm an account whose
    password someone else chose ("pre-hijacked accounts", Sudhodanan & Paverd, USENIX Security 2022). Confirming
    needs the account's password too, or a new one chosen through the password reset."""

    code = "confirmation_needs_login"
    status = 403
    default_message = "Enter the account's password to confirm its email address."
