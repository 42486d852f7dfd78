from django.urls import path

from apertur.uploads import views

app_name = "uploads"

urlpatterns = [
    path("u/<str:token>", views.public_page, name="public"),
    path("u/<str:token>/unlock", views.public_unlock, name="unlock"),
    path("u/<str:token>/files", views.public_file, name="file"),
    path("projects/<str:public_id>/sessions", views.session_create, name="create"),
    path("projects/<str:public_id>/sessions/<str:session_id>/", views.session_detail, name="session"),
    path("projects/<str:public_id>/sessions/<str:session_id>/close", views.session_close, name="close"),
    path("uploads/<str:upload_id>/download", views.upload_download, name="download"),
    path("projects/<str:public_id>/destinations/new", views.destination_new, name="destination-new"),
    path(
        "projects/<str:public_id>/destinations/<str:destination_id>/",
        views.destination_detail,
        name="destination",
    ),
    path(
        "projects/<str:public_id>/destinations/<str:destination_id>/roll-secret",
        views.destination_roll_secret,
        name="destination-roll-secret",
    ),
    path(
        "projects/<str:public_id>/destinations/<str:destination_id>/access-key",
        views.destination_credentials,
        name="destination-credentials",
    ),
    path(
        "projects/<str:public_id>/destinations/<str:destination_id>/enable",
        views.destination_switch,
        {"on": True},
        name="destination-enable",
    ),
    path(
        "projects/<str:public_id>/destinations/<str:destination_id>/disable",
        views.destination_switch,
        {"on": False},
        name="destination-disable",
    ),
    path(
        "projects/<str:public_id>/destinations/<str:destination_id>/delete",
        views.destination_delete,
        name="destination-delete",
    ),
]
