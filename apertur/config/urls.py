from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from apertur.api.v1 import api
from apertur.core import views as core_views
from apertur.integrations.stripe import views as stripe_views
from apertur.oauth import sdk as sdk_views
from apertur.oauth import views as oauth_views
from apertur.payouts import webhooks as paypal_webhooks
from apertur.referrals import views as referral_views

# Staff read these in every admin page's title and header, instead of "Django site admin".
admin.site.site_header = admin.site.site_title = "Apertur admin"

urlpatterns = [
    # The machine paths partner servers call all day come first: URL resolution tries patterns in order.
    # The seeds document the token endpoint under /api/v1 too; it is the same view.
    path("api/v1/oauth/token", oauth_views.token, name="api-oauth-token"),
    path("api/v1/", api.urls),
    path("oauth/", include("apertur.oauth.urls")),
    path("", core_views.home, name="home"),
    path("healthz", core_views.healthz, name="healthz"),
    path("favicon.ico", core_views.favicon),
    path("status", core_views.status, name="status"),
    path("r/<path:code>", referral_views.referral, name="referral"),  # path: "/r/<code>/" is still the link
    path("webhooks/stripe", stripe_views.stripe_webhook, name="stripe-webhook"),
    path("webhooks/paypal", paypal_webhooks.paypal_webhook, name="paypal-webhook"),
    path("admin/login/", core_views.admin_login),  # before the admin's own: see admin_login
    path("admin/", admin.site.urls),
    path(".well-known/oauth-authorization-server", oauth_views.metadata, name="oauth-metadata"),
    path("sdk/aptr-connect.js", sdk_views.latest, name="sdk-latest"),
    path("sdk/v<str:version>/aptr-connect.js", sdk_views.pinned, name="sdk-pinned"),
    path("", include("apertur.accounts.urls")),
    path("", include("apertur.uploads.urls")),
    path("", include("apertur.webhooks.urls")),
    path("projects/", include("apertur.projects.urls")),
    path("partners/", include("apertur.partners.urls")),
]

if settings.DEBUG:
    urlpatterns += [path("dev/mail/", core_views.dev_mail, name="dev-mail")]

handler404 = core_views.page_not_found
