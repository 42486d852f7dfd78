from django.urls import path

from apertur.oauth import portal_views as views

app_name = "apps"

urlpatterns = [
    path("", views.app_list, name="list"),
    path("new", views.app_new, name="new"),
    path("<str:client_id>/", views.app_detail, name="detail"),
    path("<str:client_id>/edit", views.app_edit, name="edit"),
    path("<str:client_id>/<str:action>", views.app_action, name="action"),
]
