from django.contrib import admin
from django.http import JsonResponse
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView


def health(request):
    """Liveness for the run script and load balancers; reveals nothing."""
    return JsonResponse({"status": "ok"})


handler404 = "portal.api_errors.not_found"
handler500 = "portal.outage.server_error"  # a database outage is a 503 (portal/outage.py)

admin.site.site_header = "Secure data portal"
admin.site.site_title = "Secure data portal"

urlpatterns = [
    path("healthz", health, name="health"),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/v1/", include("accounts.api.urls")),
    path("api/v1/", include("datasets.api.urls")),
    path("api/v1/", include("compliance.api.urls")),
    path("api/v1/", include("compliance.governance_urls")),
    path("", include("dashboards.urls")),
]
