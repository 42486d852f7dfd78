from django.urls import path

from apertur.projects import views

app_name = "projects"

urlpatterns = [
    path("", views.project_list, name="list"),
    path("<str:public_id>/", views.project_detail, name="detail"),
    path("<str:public_id>/billing", views.billing, name="billing"),
    path("<str:public_id>/settings", views.project_settings, name="settings"),
    path("<str:public_id>/api-keys", views.api_key_create, name="api-key-create"),
    # "View all" of the project page's cards (the detail pages of webhooks and destinations are theirs).
    path("<str:public_id>/api-keys/", views.card_list, {"card": "api-keys"}, name="api-keys"),
    path("<str:public_id>/destinations/", views.card_list, {"card": "destinations"}, name="destinations"),
    path("<str:public_id>/webhooks/", views.card_list, {"card": "webhooks"}, name="webhooks"),
    path("<str:public_id>/connections/", views.card_list, {"card": "connections"}, name="connections"),
    path("<str:public_id>/api-keys/<int:key_id>/revoke", views.api_key_revoke, name="api-key-revoke"),
    path(
        "<str:public_id>/connections/<int:connection_id>/disconnect",
        views.disconnect_app,
        name="disconnect-app",
    ),
]
