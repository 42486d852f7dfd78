from apertur.core.errors import LimitReached, NotFound, ValidationFailed


class InvalidEndpoint(ValidationFailed):
    code = "invalid_webhook_endpoint"


class EndpointNotFound(NotFound):
    code = "webhook_endpoint_not_found"
    default_message = "There is no such webhook endpoint."


class EndpointLimitReached(LimitReached):
    default_message = "This project has reached the limit of webhook endpoints."
