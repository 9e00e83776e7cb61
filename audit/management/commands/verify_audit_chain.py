"""``manage.py verify_audit_chain``: exit 0 on an intact chain, 1 naming the first bad event."""

from django.core.management.base import BaseCommand, CommandError

from audit import chain, review


def _anchor(value: str) -> tuple[int, str]:
    event_id, _, digest = value.partition(":")
    if not event_id.isdigit() or len(digest) != 64:
        raise CommandError("--anchor takes ID:HASH (the head printed by an earlier run)")
    return int(event_id), digest


class Command(BaseCommand):
    help = "Verify the audit events' hash chain from the first event to the last."

    def add_arguments(self, parser):
        parser.add_argument("--anchor", action="append", default=[], help="ID:HASH of a head seen earlier")
        parser.add_argument(
            "--record", action="store_true", help="store the result as a chain check (and alert if broken)"
        )

    def handle(self, *args, anchor, record, **options):
        if record:
            check = review.verify_and_record()
            ok, events, head_id, head_hash = check.ok, check.events, check.head_id, check.head_hash
            first_bad, detail = check.first_bad_id, check.detail
        else:
            report = chain.verify(anchors=[_anchor(a) for a in anchor] + chain.last_anchor())
            ok, events, head_id, head_hash = report.ok, report.events, report.head_id, report.head_hash
            first_bad, detail = report.first_bad_id, report.detail
        if not ok:
            raise CommandError(f"audit chain BROKEN at event {first_bad}: {detail}", returncode=1)
        self.stdout.write(f"audit chain intact: {events} events, head {head_id}:{head_hash}")
