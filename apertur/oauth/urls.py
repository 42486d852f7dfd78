from django.urls import path

from apertur.oauth import views

app_name = "oauth"

urlpatterns = [
    path("authorize", views.authorize, name="authorize"),
    path("token", views.token, name="token"),
    path("revoke", views.revoke, name="revoke"),
    path("introspect", views.introspect, name="introspect"),
]
