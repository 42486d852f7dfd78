from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from apertur.core import views as core_views

urlpatterns = [
    path("", core_views.home, name="home"),
    path("healthz", core_views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("", include("apertur.accounts.urls")),
    path("projects/", include("apertur.projects.urls")),
    path("partners/", include("apertur.partners.urls")),
]

if settings.DEBUG:
    urlpatterns += [path("dev/mail/", core_views.dev_mail, name="dev-mail")]
