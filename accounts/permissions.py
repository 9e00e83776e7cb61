"""``MfaSatisfied``: the DRF permission for write and export endpoints.

Add it to a view's ``permission_classes``.  For users whose role needs MFA (``accounts.policy``)
it refuses (403) writes (POST, PUT, PATCH, DELETE) and every request to an export view
(``policy_action == "export"``) unless the API token was issued after a verified one-time code
(``POST /api/v1/auth/token/`` with ``otp``) or the browser session passed its second factor.
Reads on other views pass: a password-issued token reads.  A view lists POST actions that only
read in ``mfa_read_actions`` (e.g. ``("run",)``).
"""

from rest_framework.permissions import SAFE_METHODS, BasePermission

from accounts import policy, selectors


class MfaSatisfied(BasePermission):
    message = (
        "This action needs multi-factor authentication: get an API token with a one-time code "
        "('otp'), or verify your session."
    )
    code = "mfa_required"

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated):
            return False  # DRF answers 401 when the request carried no credentials
        exporting = getattr(view, "policy_action", None) == policy.Action.EXPORT
        if exporting:
            return selectors.mfa_satisfied(user, request.auth)
        # A view may name POST actions that only read (e.g. running a saved report).
        if request.method in SAFE_METHODS or getattr(view, "action", None) in getattr(view, "mfa_read_actions", ()):
            return True
        return selectors.mfa_satisfied(user, request.auth)
