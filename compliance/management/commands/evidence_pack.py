"""``manage.py evidence_pack --as EMAIL --from YYYY-MM-DD --to YYYY-MM-DD --out FILE.zip``."""

import os
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from compliance import evidence


class Command(BaseCommand):
    help = "Write the SOC 2 evidence pack (ZIP) for a date range, as a user allowed to receive it."

    def add_arguments(self, parser):
        parser.add_argument("--as", dest="email", required=True, help="the requesting user (audited)")
        parser.add_argument("--from", dest="start", required=True, type=date.fromisoformat)
        parser.add_argument("--to", dest="end", required=True, type=date.fromisoformat)
        parser.add_argument("--out", required=True, help="path of the ZIP to write (mode 600)")

    def handle(self, *args, email, start, end, out, **options):
        user = User.objects.filter(email=email.strip().lower(), is_active=True).first()
        if user is None:
            raise CommandError("no active user with that email")
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                manifest = evidence.build(user, start, end, handle)
        except (evidence.EvidenceError, PermissionError) as exc:
            os.unlink(out)
            raise CommandError(str(exc)) from None
        self.stdout.write(f"wrote {out}: {len(manifest['files'])} files")
