"""``manage.py portal_user create|disable``: manage portal accounts from the shell."""

import sys

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand

from accounts import services
from accounts.models import User


class Command(BaseCommand):
    help = "Create or disable a portal user."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="verb", required=True)
        create = sub.add_parser("create", help="create a user; password from stdin, else generated")
        create.add_argument("email")
        create.add_argument("--role", required=True, help=", ".join(services.ROLE_CHOICES))
        create.add_argument("--team")
        create.add_argument("--department")
        create.add_argument("--name", default="")
        disable = sub.add_parser("disable", help="disable a user and revoke their tokens")
        disable.add_argument("email")

    def handle(self, *args, verb, **opts):
        try:
            if verb == "create":
                self._create(opts)
            else:
                user = services.disable_user(opts["email"])
                self.stdout.write(f"disabled {user.email}")
        except services.AccountError as exc:
            self.stderr.write(f"portal_user: {exc}")
            sys.exit(2)

    def _create(self, opts):
        password = None
        if not sys.stdin.isatty():
            password = sys.stdin.readline().strip() or None
        generated = password is None
        if generated:
            password = services.generate_password()
        else:
            # A chosen password meets the same validators as one set in the admin.
            try:
                validate_password(password, User(email=opts["email"] or "", full_name=opts.get("name", "")))
            except ValidationError as exc:
                raise services.AccountError(f"password refused: {' '.join(exc.messages)}") from None
        user = services.create_user(
            opts["email"],
            opts["role"],
            password=password,
            team=opts.get("team"),
            department=opts.get("department"),
            full_name=opts.get("name", ""),
        )
        self.stdout.write(f"created {user.email} ({opts['role']})")
        if generated:
            self.stdout.write(f"password (shown once): {password}")
