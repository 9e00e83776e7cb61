from django.apps import AppConfig


class DashboardsConfig(AppConfig):
    """Browser pages: role dashboards, customer and report pages, exports."""

    name = "dashboards"
    default_auto_field = "django.db.models.BigAutoField"
