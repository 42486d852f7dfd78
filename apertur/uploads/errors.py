from apertur.core.errors import AperturError, Conflict, LimitReached, NotFound, PermissionDenied, ValidationFailed


class InvalidSession(ValidationFailed):
    code = "invalid_upload_session"


class SessionLimitReached(Conflict):
    code = "session_limit_reached"
    default_message = "The plan's limit of active upload sessions is reached. Close a session or upgrade."


class SessionNotAccepting(Conflict):
    code = "session_closed"
    default_message = "This upload link is closed or has expired."


class SessionNotFound(NotFound):
    code = "upload_session_not_found"
    default_message = "There is no such upload session."


class WrongPassword(PermissionDenied):
    code = "wrong_password"
    default_message = "The password is not right."


class UploadRejected(AperturError):
    code = "upload_rejected"
    status = 422


class QuotaExceeded(AperturError):
    code = "quota_exceeded"
    status = 409


class InvalidDestination(ValidationFailed):
    code = "invalid_destination"


class StorageUnavailable(AperturError):
    """The file store refused the file (disk full, permissions, the S3 endpoint out of reach): nothing was kept."""

    code = "storage_unavailable"
    status = 503
    default_message = "Your photo could not be stored right now. Nothing was kept: try again in a few minutes."


class DestinationLimitReached(LimitReached):
    default_message = "This project has reached the limit of destinations."
