from django.urls import path
from rest_framework.routers import SimpleRouter

from datasets.api.activity_views import OrderViewSet, PageViewViewSet
from datasets.api.export_views import ExportViewSet
from datasets.api.grant_views import AccessGrantViewSet, RevealView
from datasets.api.report_views import ReportViewSet
from datasets.api.views import CustomerViewSet

router = SimpleRouter()
router.register("customers", CustomerViewSet, basename="customer")
router.register("orders", OrderViewSet, basename="order")
router.register("pageviews", PageViewViewSet, basename="pageview")
router.register("reports", ReportViewSet, basename="report")
router.register("exports", ExportViewSet, basename="export")
router.register("access-grants", AccessGrantViewSet, basename="access-grant")
urlpatterns = [
    path("customers/<int:pk>/reveal/", RevealView.as_view(), name="customer-reveal"),
    *router.urls,
]
