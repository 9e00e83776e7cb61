from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "compliance"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Celery's autodiscovery imports ``compliance.tasks`` only; the subject-request tasks
        # live in their own module and register here, in every process (web, worker, beat).
        # Governance (retention, checklist): its tasks, the personal-data system check, erasure hooks.
        from compliance import (
            governance_hooks,  # noqa: F401
            requests_tasks,  # noqa: F401
        )
