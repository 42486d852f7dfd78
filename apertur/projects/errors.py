from apertur.core.errors import Conflict, LimitReached, ValidationFailed


class UnknownPlan(ValidationFailed):
    code = "unknown_plan"
    default_message = "There is no such plan."


class InvalidProjectName(ValidationFailed):
    code = "invalid_project_name"
    default_message = "Enter a project name (1 to 100 characters)."


class ProjectNameTaken(Conflict):
    code = "project_name_taken"
    default_message = "You already have a project with this name."


class InvalidApiKeyName(ValidationFailed):
    code = "invalid_api_key_name"
    default_message = "Name the key (1 to 80 characters), e.g. where it is used."


class InvalidProjectSettings(ValidationFailed):
    code = "invalid_project_settings"


class ProjectLimitReached(LimitReached):
    default_message = "You have reached the limit of projects per account."


class ApiKeyLimitReached(LimitReached):
    default_message = "This project has reached the limit of active API keys."
