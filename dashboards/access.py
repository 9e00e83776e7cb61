"""Who reaches a page: signed in, second factor passed where the policy asks for it, and the
policy's answer for the page.  Refusals are 403 (the audit middleware records them)."""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import reverse

from accounts import policy


def login_url() -> str:
    return reverse("accounts:login")


def portal_page(view):
    """Signed in, and past the second factor when the user's role or duty needs one."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        from accounts.views import second_factor_step

        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path(), login_url())
        step = second_factor_step(user, request.get_full_path())
        if step:
            return HttpResponseRedirect(step)
        return view(request, *args, **kwargs)

    return wrapper


def row_page(view):
    """A page that lists or shows rows: only for roles whose view scope reaches rows (never the
    Executive's dashboards-only scope)."""

    @portal_page
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not policy.can(request.user, policy.Action.VIEW):
            raise PermissionDenied("Your role does not give access to rows.")
        return view(request, *args, **kwargs)

    return wrapper


def export_page(view):
    @portal_page
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not policy.may_export(request.user):
            raise PermissionDenied("Your role cannot export data.")
        return view(request, *args, **kwargs)

    return wrapper
