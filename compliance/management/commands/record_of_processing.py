"""``manage.py record_of_processing``: the Art. 30 record as CSV on standard output."""

from django.core.management.base import BaseCommand

from compliance import record_of_processing


class Command(BaseCommand):
    help = "Print the record of processing activities (generated from the models) as CSV."

    def handle(self, *args, **options):
        self.stdout.write(record_of_processing.as_csv(), ending="")
