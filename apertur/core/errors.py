"""Errors with a stable machine code and an HTTP status.

Services raise these; views and the CLI turn them into messages. ``code`` values are part of the public
contract: never rename one.
"""

from __future__ import annotations

import math


class AperturError(Exception):
    code: str = "error"
    status: int = 400
    default_message: str = "Something went wrong."

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        self.message = message or self.default_message
        self.field = field
        # Further problems found in the same input (core.validation.Checks): a form shows them all at once.
        self.others: list[AperturError] = []
        super().__init__(self.message)

    @property
    def problems(self) -> list[AperturError]:
        """This problem and the others found with it, in the order they were found."""
        return [self, *self.others]

    def as_dict(self) -> dict[str, str]:
        data = {"code": self.code, "message": self.message}
        if self.field:
            data["field"] = self.field
        return data


class ValidationFailed(AperturError):
    code = "validation_error"
    status = 422
    default_message = "The input is not valid."


class NotFound(AperturError):
    code = "not_found"
    status = 404
    default_message = "Not found."


class PermissionDenied(AperturError):
    code = "forbidden"
    status = 403
    default_message = "You are not allowed to do this."


class Conflict(AperturError):
    code = "conflict"
    status = 409
    default_message = "This conflicts with the current state."


class LimitReached(Conflict):
    """An owner already has as many of a kind of thing as one owner may (projects per account, OAuth apps per
    partner, …): nothing was created. One code for every such cap; the message names the limit and the way out.
    The count is taken with the owner's row locked, so two creations at once cannot both take the last slot."""

    code = "limit_reached"
    default_message = "You have reached the limit for this. Delete one you no longer use, then try again."


class RateLimited(AperturError):
    code = "rate_limited"
    status = 429
    default_message = "Too many attempts. Try again later."

    def __init__(self, message: str | None = None, *, retry_after: int, what: str | None = None) -> None:
        """``what`` names the attempts (a service's budget, ``ratelimit.hit(what=…)``): the message is then the page's
        wait message, the same on every page that calls the service."""
        self.retry_after = retry_after
        self.what = what
        super().__init__(message or (self.wait_message() if what else None))

    def wait_message(self, what: str | None = None) -> str:
        """What a page says: "Too many {what}. Try again in N minute(s)." (at least one minute), or in hours, rounded
        up, past an hour and a half (a daily budget's wait). ``what``: the attempts' name given here, else the one
        the refusal was raised with, else "attempts"."""
        what = what or self.what or "attempts"
        if self.retry_after > 90 * 60:
            return f"Too many {what}. Try again in {math.ceil(self.retry_after / 3600)} hour(s)."
        return f"Too many {what}. Try again in {max(1, round(self.retry_after / 60))} minute(s)."


class ServiceUnavailable(AperturError):
    """A dependency every request of this kind needs is out of reach (Redis, for the rate limits): nothing was done,
    the same request can be sent again later."""

    code = "service_unavailable"
    status = 503
    default_message = "Apertur is briefly unavailable. Nothing was done: try again in a few minutes."
