from django.urls import path

from apertur.webhooks import views

app_name = "webhooks"

urlpatterns = [
    path("projects/<str:public_id>/webhooks/new", views.endpoint_new, name="new"),
    path("projects/<str:public_id>/webhooks/<str:endpoint_id>/", views.endpoint_detail, name="detail"),
    path("projects/<str:public_id>/webhooks/<str:endpoint_id>/test", views.endpoint_test, name="test"),
    path(
        "projects/<str:public_id>/webhooks/<str:endpoint_id>/enable", views.endpoint_switch, {"on": True}, name="enable"
    ),
    path(
        "projects/<str:public_id>/webhooks/<str:endpoint_id>/disable",
        views.endpoint_switch,
        {"on": False},
        name="disable",
    ),
    path("projects/<str:public_id>/webhooks/<str:endpoint_id>/delete", views.endpoint_delete, name="delete"),
    path(
        "projects/<str:public_id>/webhooks/<str:endpoint_id>/roll-secret",
        views.endpoint_roll_secret,
        name="roll_secret",
    ),
]
