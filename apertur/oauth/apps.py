from django.apps import AppConfig


class OAuthConfig(AppConfig):
    name = "apertur.oauth"
    label = "oauth"
    verbose_name = "OAuth"

    def ready(self) -> None:
        from apertur.accounts.signals import when_claimed
        from apertur.core import housekeeping
        from apertur.core.signals import staff_deleting
        from apertur.oauth import services, token_cache, tokens

        token_cache.ready()
        housekeeping.register("previous_client_secrets", services.clear_expired_previous_secrets)
        # Tokens first: a code is deleted once no token issued from it is left.
        housekeeping.register("dead_oauth_tokens", tokens.prune_dead_tokens)
        housekeeping.register("dead_authorization_codes", tokens.prune_dead_codes)
        # One per refresh, by the app's server (the token row and its family are the record): 90 days.
        housekeeping.register_routine_audit("oauth.token_refreshed")
        # An account claimed from whoever signed up with its address: their connections and apps stop working.
        when_claimed(services.turn_off_for_claimed_account, dispatch_uid="oauth-unproven-signup-claimed")
        # Staff deleting a project or an account in the admin: token requests in flight on what the deletion takes
        # are waited for first.
        staff_deleting.connect(services.before_staff_delete, dispatch_uid="oauth-before-staff-delete", weak=False)
