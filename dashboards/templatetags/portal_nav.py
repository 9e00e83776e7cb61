"""The role-aware menu: each entry is shown only when the policy lets the user reach it."""

from django import template
from django.urls import reverse

from accounts import policy

register = template.Library()


def menu_items(request) -> list[dict]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return []
    from accounts import selectors

    if policy.requires_mfa(user) and not selectors.session_is_verified(user):
        return []  # between the password and the second factor: nothing to open yet
    items = []
    rule = policy.dashboard_rule(user)
    if rule is not None:
        items.append(("Dashboard", reverse("dashboards:dashboard", kwargs={"name": rule.dashboard.value})))
    if policy.can(user, policy.Action.VIEW):
        items.append(("Customers", reverse("dashboards:customers")))
        items.append(("Reports", reverse("dashboards:reports")))
    if policy.may_export(user):
        items.append(("Exports", reverse("dashboards:exports")))
    if user.is_staff:
        items.append(("Admin", reverse("admin:index")))
    items.append(("Account", reverse("accounts:home")))
    path = request.path
    return [
        {"label": label, "url": url, "current": path == url or (url != "/" and path.startswith(url))}
        for label, url in items
    ]


@register.inclusion_tag("dashboards/_menu.html", takes_context=True)
def portal_menu(context):
    request = context.get("request")
    return {
        "items": menu_items(request) if request else [],
        "user": getattr(request, "user", None),
        "role": policy.access(request.user, policy.Action.VIEW).role if request else None,
    }
