from django.urls import path

from apertur.projects import views

app_name = "projects"

urlpatterns = [
    path("", views.project_list, name="list"),
    path("<str:public_id>/", views.project_detail, name="detail"),
    path("<str:public_id>/api-keys", views.api_key_create, name="api-key-create"),
    path("<str:public_id>/api-keys/<int:key_id>/revoke", views.api_key_revoke, name="api-key-revoke"),
    path(
        "<str:public_id>/connections/<int:connection_id>/disconnect",
        views.disconnect_app,
        name="disconnect-app",
    ),
]
