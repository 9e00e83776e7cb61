"""The daily review: verify the chain, summarise the day's alerts, keep the result as evidence."""

import logging
from datetime import timedelta

from django.utils import timezone

from audit import alerts, chain
from audit.choices import AlertStatus
from audit.models import AuditChainCheck, SecurityAlert

logger = logging.getLogger("audit.review")


def verify_and_record(*, use_anchor: bool = True) -> AuditChainCheck:
    """Verify the whole chain (anchored at the last good check's head), store the outcome, and
    raise the critical alert if the chain is broken."""
    report = chain.verify(anchors=chain.last_anchor() if use_anchor else ())
    since = timezone.now() - timedelta(days=1)
    check = AuditChainCheck.objects.create(
        ok=report.ok,
        events=report.events,
        head_id=report.head_id,
        head_hash=report.head_hash if report.head_id else "",
        first_bad_id=report.first_bad_id,
        detail=report.detail[:500],
        alerts_open=SecurityAlert.objects.filter(status=AlertStatus.OPEN).count(),
        alerts_raised_24h=sum(alerts.summary_since(since).values()),
    )
    if report.ok:
        # The head also goes to the log stream (shipped off the host): an outside anchor.
        logger.info("audit chain verified: %s events, head %s %s", report.events, report.head_id, report.head_hash)
    else:
        logger.error("audit chain BROKEN at event %s: %s", report.first_bad_id, report.detail)
        alerts.audit_chain_broken(report.first_bad_id, report.detail)
    return check
