from django.urls import path, register_converter

from dashboards.views import customers, exports, home, reports


class RowId:
    """A row id as PostgreSQL's bigint holds it; anything longer is a 404, never an overflow."""

    regex = "[0-9]{1,18}"

    def to_python(self, value):
        return int(value)

    def to_url(self, value):
        return str(value)


register_converter(RowId, "rowid")

app_name = "dashboards"

urlpatterns = [
    path("", home.home, name="home"),
    path("dashboards/<slug:name>/", home.dashboard, name="dashboard"),
    path("customers/", customers.customer_list, name="customers"),
    path("customers/<rowid:pk>/", customers.customer_detail, name="customer"),
    path("customers/<rowid:pk>/reveal/", customers.customer_reveal, name="customer-reveal"),
    path("reports/", reports.report_list, name="reports"),
    path("reports/<rowid:pk>/", reports.report_detail, name="report"),
    path("exports/", exports.export_list, name="exports"),
    path("exports/start/", exports.export_start, name="export-start"),
    path("exports/<uuid:pk>/", exports.export_status, name="export"),
    path("exports/<uuid:pk>/status.json", exports.export_status_json, name="export-status"),
]
