"""Throttling of the account pages. Login: a per-account and a per-IP budget of failed attempts (OWASP ASVS
2.2.1). Signup, password reset and confirmation mail: per IP, and per address for anything that sends mail, so
nobody can use Apertur to flood a mailbox."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import authenticate
from django.http import HttpRequest

from apertur.accounts.models import User, normalize_email
from apertur.core import audit, ratelimit
from apertur.core.http import rate_limit_ip

SIGNUP_PER_IP = ratelimit.Limit("signup-ip", 20, 60 * 60)
RESET_PER_IP = ratelimit.Limit("password-reset-ip", 10, 15 * 60)
RESET_PER_EMAIL = ratelimit.Limit("password-reset-email", 3, 60 * 60)
CONFIRM_RESEND_PER_IP = ratelimit.Limit("confirm-resend-ip", 10, 15 * 60)
# Confirmation mail to one address, whatever asked for it: a resend, or an email change to that address.
CONFIRM_RESEND_PER_EMAIL = ratelimit.Limit("confirm-resend-email", 3, 60 * 60)
# The account page: wrong current passwords (a borrowed or stolen session guessing it), and email change links.
ACCOUNT_PASSWORD_CHECK = ratelimit.Limit("account-password-check", 10, 15 * 60)
EMAIL_CHANGE_PER_ACCOUNT = ratelimit.Limit("email-change-account", 5, 60 * 60)
#: Password changes from the account page per account: each one mails the account's address and is audited, so
#: changing back and forth was unlimited mail from Apertur. One change is the real use; ten leaves room for mistakes.
PASSWORD_CHANGES_PER_ACCOUNT = ratelimit.Limit("password-change-account", 10, 60 * 60)


def _limits() -> tuple[ratelimit.Limit, ratelimit.Limit, ratelimit.Limit]:
    account_ip, account, ip = (
        settings.LOGIN_RATE_PER_ACCOUNT_IP,
        settings.LOGIN_RATE_PER_ACCOUNT,
        settings.LOGIN_RATE_PER_IP,
    )
    return (
        ratelimit.Limit("login-account-ip", account_ip[0], account_ip[1]),
        ratelimit.Limit("login-account", account[0], account[1]),
        ratelimit.Limit("login-ip", ip[0], ip[1]),
    )


def attempt_login(*, request: HttpRequest, email: str, password: str, ip: str) -> User | None:
    """Authenticate within three budgets of failed attempts: per account and IP (tight: stops guessing from
    one place), per IP (across accounts) and per account (loose: stops distributed guessing while making it
    costly to lock a real user out). Attempts are counted atomically *before* the password is checked, so a
    burst of parallel guesses cannot outrun the counter; a success then gives its hits back (and clears the
    account-and-IP budget), so only failures use the budgets: an office behind one NAT address logs in all
    day, and 429 comes only after the failures. A refused attempt checks nothing and counts nothing."""
    account_ip, account, ip_limit = _limits()
    address, network = normalize_email(email), rate_limit_ip(ip)
    counted = ratelimit.hit_all((account_ip, f"{address}|{network}"), (ip_limit, network), (account, address))
    user = authenticate(request, email=address, password=password)
    if user is None:
        known = User.objects.filter(email=address).first()
        if known is not None:
            audit.record(action="user.login_failed", obj=known, ip=ip)
        return None
    ratelimit.give_back(*counted)
    ratelimit.reset(account_ip, f"{address}|{network}")
    assert isinstance(user, User)
    return user
