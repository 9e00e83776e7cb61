"""The Admin dashboard's security and compliance panels: open alerts, overdue GDPR requests and
the checklist status.

Built on what exists: ``audit.SecurityAlert`` (open alerts; overdue GDPR requests arrive there as
``gdpr_request_overdue`` alerts) and ``audit.AuditChainCheck`` (the daily review).  Apps that come
later (compliance: subject requests, the monthly checklist) add their own items through
``register`` from their ``AppConfig.ready``; nothing here guesses at their models.  No panel
holds personal data: alert subjects are ``user:<id>``, ``ip:<addr>`` or keyed hashes.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from django.apps import apps
from django.urls import NoReverseMatch, reverse

OPEN_ALERTS_SHOWN = 10


@dataclass
class PanelItem:
    label: str
    status: str  # "ok", "warning", "problem", "info"
    detail: str = ""
    link: str = ""


@dataclass
class SecurityPanels:
    alerts_by_severity: dict[str, int] = field(default_factory=dict)
    open_alerts: list[PanelItem] = field(default_factory=list)
    overdue_gdpr: list[PanelItem] = field(default_factory=list)
    checklist: list[PanelItem] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)


# kind ("overdue_gdpr" or "checklist") -> providers returning PanelItems
_PROVIDERS: dict[str, list[Callable[[], list[PanelItem]]]] = {"overdue_gdpr": [], "checklist": []}


def register(kind: str, provider: Callable[[], list[PanelItem]]) -> None:
    """Let another app add items (e.g. compliance: overdue subject requests, checklist items)."""
    if provider not in _PROVIDERS[kind]:
        _PROVIDERS[kind].append(provider)


def _admin_link(name: str, *args) -> str:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return ""


def _alert_items(panels: SecurityPanels) -> None:
    from django.db.models import Count

    from audit.alerts import Rule
    from audit.choices import AlertStatus
    from audit.models import SecurityAlert

    unresolved = SecurityAlert.objects.exclude(status=AlertStatus.RESOLVED)
    panels.alerts_by_severity = dict(
        unresolved.values("severity").annotate(n=Count("id")).order_by("severity").values_list("severity", "n")
    )
    for alert in unresolved.exclude(rule=Rule.GDPR_OVERDUE).order_by("-last_seen")[:OPEN_ALERTS_SHOWN]:
        panels.open_alerts.append(
            PanelItem(
                f"{alert.rule} · {alert.subject}",
                "problem" if alert.severity in ("high", "critical") else "warning",
                f"{alert.severity}, {alert.status}, seen {alert.count}x, last {alert.last_seen:%Y-%m-%d %H:%M} UTC",
                _admin_link("admin:audit_securityalert_change", alert.pk),
            )
        )
    for alert in unresolved.filter(rule=Rule.GDPR_OVERDUE).order_by("first_seen")[:OPEN_ALERTS_SHOWN]:
        due = (alert.detail or {}).get("due_at", "")
        panels.overdue_gdpr.append(
            PanelItem(
                alert.subject,
                "problem",
                f"due {due[:16].replace('T', ' ')}" if due else "past its deadline",
                _admin_link("admin:audit_securityalert_change", alert.pk),
            )
        )


def _chain_item() -> PanelItem | None:
    from audit.models import AuditChainCheck

    check = AuditChainCheck.objects.order_by("-id").first()
    if check is None:
        return PanelItem("Audit logs collected and verified", "warning", "The daily review has not run yet.")
    return PanelItem(
        "Audit logs collected and verified",
        "ok" if check.ok else "problem",
        f"{check.events:,} events, chain {'intact' if check.ok else 'BROKEN'},"
        f" checked {check.checked_at:%Y-%m-%d %H:%M} UTC",
        _admin_link("admin:audit_auditchaincheck_change", check.pk),
    )


def security_panels() -> SecurityPanels:
    panels = SecurityPanels()
    if apps.is_installed("audit"):
        _alert_items(panels)
        chain = _chain_item()
        if chain:
            panels.checklist.append(chain)
    for kind, target in (("overdue_gdpr", panels.overdue_gdpr), ("checklist", panels.checklist)):
        for provider in _PROVIDERS[kind]:
            target.extend(provider())
    if not _PROVIDERS["overdue_gdpr"]:
        panels.unavailable.append("GDPR request queue (compliance app): only overdue alerts are shown until it exists.")
    if not _PROVIDERS["checklist"]:
        panels.unavailable.append("Monthly compliance checklist (compliance app): not available yet.")
    return panels
