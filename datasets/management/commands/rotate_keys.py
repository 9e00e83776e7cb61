"""``manage.py rotate_keys``: re-encrypt every encrypted field and recompute blind indexes under
the current keys, in resumable batches, while the portal keeps serving."""

from django.core.management.base import BaseCommand, CommandError

from datasets import key_rotation


class Command(BaseCommand):
    help = "Re-encrypt all encrypted fields and recompute blind indexes under the current keys."

    def add_arguments(self, parser):
        parser.add_argument("--batch", type=int, default=key_rotation.BATCH)
        parser.add_argument("--status", action="store_true", help="show rows per key id and exit")

    def handle(self, *args, batch, status, **opts):
        if status:
            for label, counts in key_rotation.keys_in_use().items():
                self.stdout.write(f"{label}: {counts}")
            return
        if not 1 <= batch <= 10_000:
            raise CommandError("--batch must be between 1 and 10000")
        run = key_rotation.rotate(batch, progress=lambda label, n: self.stdout.write(f"{label}: {n} rows"))
        self.stdout.write(f"rotation {run.pk} complete: {run.rows}")
