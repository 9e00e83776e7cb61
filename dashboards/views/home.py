"""The landing page and the role dashboards."""

from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from accounts import policy
from dashboards import presentation, selectors
from dashboards.access import portal_page
from dashboards.forms import DashboardFilterForm
from dashboards.security_panels import security_panels

TITLES = {
    policy.Dashboard.ANALYST: "Team dashboard",
    policy.Dashboard.MANAGER: "Department dashboard",
    policy.Dashboard.EXECUTIVE: "Company KPIs",
    policy.Dashboard.ADMIN: "Administration dashboard",
}


@require_GET
@portal_page
def home(request):
    """Straight to the user's dashboard; a user without one (e.g. the DPO duty alone) gets links."""
    rule = policy.dashboard_rule(request.user)
    if rule is not None:
        return redirect("dashboards:dashboard", name=rule.dashboard.value)
    return render(request, "dashboards/home.html", {})


@require_GET
@portal_page
def dashboard(request, name: str):
    rule = policy.dashboard_rule(request.user)
    if rule is None or rule.dashboard.value != name:
        raise PermissionDenied("This dashboard is not your role's.")
    sanctioned = rule.source == policy.DashboardSource.SANCTIONED_AGGREGATES
    team_choices = None if sanctioned else selectors.team_choices(request.user)
    form = DashboardFilterForm(
        request.GET or None,
        team_choices=team_choices,
        whole_months=rule.dashboard in policy.WHOLE_MONTH_RANGES,
    )
    context = {"form": form, "rule": rule, "title": TITLES[rule.dashboard], "sanctioned": sanctioned}
    if form.is_bound and not form.is_valid():
        return render(request, "dashboards/dashboard.html", context, status=400)
    period = form.period()
    if sanctioned:
        figures = selectors.sanctioned_figures(period)
    else:
        figures = selectors.row_figures(request.user, period, form.team_ids(), rule.breakdowns)
    fmt = presentation.Formatter(suppressed=sanctioned)
    context.update(
        period=period,
        tiles=presentation.tiles(figures, fmt),
        panels=presentation.panels(figures, fmt),
        threshold=policy.SMALL_GROUP_THRESHOLD,
        security=security_panels() if rule.security_panels else None,
    )
    return render(request, "dashboards/dashboard.html", context)
