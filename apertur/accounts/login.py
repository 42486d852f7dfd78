"""Login throttling: a per-account and a per-IP budget of failed attempts (OWASP ASVS 2.2.1)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import authenticate
from django.http import HttpRequest

from apertur.accounts.models import User, normalize_email
from apertur.core import audit, ratelimit

SIGNUP_PER_IP = ratelimit.Limit("signup-ip", 20, 60 * 60)
RESET_PER_IP = ratelimit.Limit("password-reset-ip", 10, 15 * 60)
RESET_PER_EMAIL = ratelimit.Limit("password-reset-email", 3, 60 * 60)


def _limits() -> tuple[ratelimit.Limit, ratelimit.Limit]:
    per_account, per_ip = settings.LOGIN_RATE_PER_ACCOUNT, settings.LOGIN_RATE_PER_IP
    return (
        ratelimit.Limit("login-account", per_account[0], per_account[1]),
        ratelimit.Limit("login-ip", per_ip[0], per_ip[1]),
    )


def attempt_login(*, request: HttpRequest, email: str, password: str, ip: str) -> User | None:
    """Authenticate, counting failures. Raises ``RateLimited`` before checking the password when either
    budget is spent, so a locked-out attacker learns nothing from further guesses."""
    account_limit, ip_limit = _limits()
    address = normalize_email(email)
    ratelimit.check(account_limit, address)
    ratelimit.check(ip_limit, ip)
    user = authenticate(request, email=address, password=password)
    if user is None:
        ratelimit.hit(account_limit, address)
        ratelimit.hit(ip_limit, ip)
        known = User.objects.filter(email=address).first()
        if known is not None:
            audit.record(action="user.login_failed", obj=known, ip=ip)
        return None
    ratelimit.reset(account_limit, address)
    assert isinstance(user, User)
    return user
