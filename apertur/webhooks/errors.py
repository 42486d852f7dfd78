from apertur.core.errors import NotFound, ValidationFailed


class InvalidEndpoint(ValidationFailed):
    code = "invalid_webhook_endpoint"


class EndpointNotFound(NotFound):
    code = "webhook_endpoint_not_found"
    default_message = "There is no such webhook endpoint."
