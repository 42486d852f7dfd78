from apertur.core.errors import LimitReached


class ReferralLinkLimitReached(LimitReached):
    default_message = "You have reached the limit of referral links per partner."
