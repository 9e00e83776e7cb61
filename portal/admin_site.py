"""The admin site: staff roles only, after a second factor for the roles that need one, and
every library model admin governed by the policy's admin table.

Admin classes written in this project ask the policy themselves (``portal.admin_policy``);
admin classes that come from libraries (auth groups, celery beat, axes, auditlog, ...) would fall
back to Django model permissions, so each is registered behind ``PolicyTableAdminMixin``: a model
missing from ``accounts.policy.ADMIN_SITE_MODELS`` is shown to nobody, superusers included.
"""

import sys
from functools import wraps
from pathlib import Path

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import BadRequest
from django.http import Http404

from accounts import policy, selectors
from portal.admin_policy import PolicyTableAdminMixin


def is_project_admin(admin_class) -> bool:
    """Whether the class was written in this project (not in an installed library)."""
    module = sys.modules.get(admin_class.__module__)
    path = Path(getattr(module, "__file__", None) or "/").resolve()
    return Path(settings.BASE_DIR).resolve() in path.parents and "site-packages" not in path.parts


class PortalAdminSite(admin.AdminSite):
    site_header = "Secure data portal"
    site_title = "Secure data portal"

    def has_permission(self, request):
        user = request.user
        if not super().has_permission(request):
            return False
        return not policy.requires_mfa(user) or selectors.session_is_verified(user)

    def admin_view(self, view, cacheable=False):
        """Every admin page refuses a NUL character in its query string (400): list filters and
        the search box would hand it to PostgreSQL, whose text type rejects it (a 500)."""
        guarded = super().admin_view(view, cacheable)

        @wraps(guarded)
        def refuse_nul(request, *args, **kwargs):
            if any("\x00" in key or any("\x00" in v for v in values) for key, values in request.GET.lists()):
                raise BadRequest("The query string holds a NUL character.")
            return guarded(request, *args, **kwargs)

        return refuse_nul

    def get_app_list(self, request, app_label=None):
        # The login page lists no models: nothing is asked of model admins for a visitor.
        if not self.has_permission(request):
            return []
        return super().get_app_list(request, app_label)

    def register(self, model_or_iterable, admin_class=None, **options):
        admin_class = admin_class or admin.ModelAdmin
        if not is_project_admin(admin_class):
            admin_class = type(
                f"Policy{admin_class.__name__}",
                (PolicyTableAdminMixin, admin_class),
                {"__module__": __name__, "policy_wraps": admin_class},
            )
        # Out of scope and missing look the same on every admin page: 404, where Django would
        # redirect to the index with "doesn't exist" (a hint that some ids are merely hidden).
        admin_class._get_obj_does_not_exist_redirect = _not_found
        return super().register(model_or_iterable, admin_class, **options)


def _not_found(model_admin, request, opts, object_id):
    raise Http404
