from django.urls import include, path

from apertur.partners import views

app_name = "partners"

urlpatterns = [
    path("", views.partner_home, name="home"),
    path("apps/", include("apertur.oauth.portal_urls")),
    path("referrals/", views.coming_soon, {"section": "referrals"}, name="referrals"),
    path("commissions/", views.coming_soon, {"section": "commissions"}, name="commissions"),
    path("payouts/", views.coming_soon, {"section": "payouts"}, name="payouts"),
    path("staff/", views.staff_list, name="staff-list"),
    path("staff/<int:partner_id>/", views.staff_detail, name="staff-detail"),
    path(
        "staff/<int:partner_id>/<str:action>",
        views.staff_review,
        name="staff-review",
    ),
]
