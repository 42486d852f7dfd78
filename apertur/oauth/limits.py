"""Rate limits of the OAuth endpoints, per client and per IP, in the shared cache (Redis when
configured), answered with 429 and ``Retry-After``."""

from apertur.core.ratelimit import Limit

AUTHORIZE_PER_IP = Limit("oauth-authorize-ip", 120, 60)
AUTHORIZE_PER_CLIENT = Limit("oauth-authorize-client", 600, 60)  # per client and IP
TOKEN_PER_IP = Limit("oauth-token-ip", 600, 60)
TOKEN_PER_CLIENT = Limit("oauth-token-client", 600, 60)  # per client and IP
