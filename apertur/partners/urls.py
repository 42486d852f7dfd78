from django.urls import include, path

from apertur.commissions import views as commission_views
from apertur.partners import views
from apertur.payouts import portal_views as payout_views
from apertur.referrals import portal_views as referral_views

app_name = "partners"

urlpatterns = [
    path("", views.partner_home, name="home"),
    path("apps/", include("apertur.oauth.portal_urls")),
    path("referrals/", referral_views.link_list, name="referrals"),
    path("commissions/", commission_views.dashboard, name="commissions"),
    path("commissions/earnings.csv", commission_views.earnings_csv, name="commissions-csv"),
    path("payouts/", views.payouts, name="payouts"),
    path("payouts/confirm/<str:token>", views.paypal_confirm, name="paypal-confirm"),
    path("payouts/statement.csv", payout_views.statement_csv, name="payouts-statement"),
    path("payouts/<int:payout_id>/", payout_views.payout_detail, name="payout-detail"),
    path("payouts/<int:payout_id>/statement.csv", payout_views.payout_statement_csv, name="payout-statement"),
    path("staff/", views.staff_list, name="staff-list"),
    path("staff/<int:partner_id>/", views.staff_detail, name="staff-detail"),
    path(
        "staff/<int:partner_id>/<str:action>",
        views.staff_review,
        name="staff-review",
    ),
]
