from django.http import JsonResponse
from django.urls import include, path
from oauth2_provider.views import ProtectedResourceView


class PlanView(ProtectedResourceView):
    """The equivalent of Apertur's GET /api/v1/plan: a bearer-protected JSON answer."""

    def get(self, request, *args, **kwargs):
        return JsonResponse({"name": "Pro", "price_cents": 1900, "currency": "CAD", "livemode": True})


urlpatterns = [
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("api/plan", PlanView.as_view()),
]
