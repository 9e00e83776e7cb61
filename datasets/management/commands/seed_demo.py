"""``manage.py seed_demo [--customers N]``: idempotent demo data."""

import os

from django.core.management.base import BaseCommand, CommandError

from accounts import services
from datasets import demo


class Command(BaseCommand):
    help = "Create demo departments, teams, accounts and customers (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=10_000)

    def handle(self, *args, customers, **opts):
        if customers < 0:
            raise CommandError("--customers must be zero or more")
        password = os.environ.get("DEMO_PASSWORD") or services.generate_password()
        created = demo.seed_organisation(password)
        added = demo.seed_customers(customers)
        if created:
            self.stdout.write("Demo accounts:")
            for account in created:
                where = account.team or account.department or "-"
                self.stdout.write(f"  {account.email:40} {account.role:10} {where}")
            if not os.environ.get("DEMO_PASSWORD"):
                self.stdout.write(f"Demo password (shown once): {password}")
        self.stdout.write(f"Demo data ready: {added} customers added.")
