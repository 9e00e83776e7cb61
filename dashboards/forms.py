"""Filter, search, reveal and export forms.  Bad input is a form error, never an exception."""

from datetime import date

from django import forms
from django.utils import timezone

from dashboards.selectors import Period
from datasets import exports
from datasets.choices import ExportFormat
from datasets.services import REVEALABLE_FIELDS

EARLIEST = date(2000, 1, 1)
LATEST = date(2100, 12, 31)
MAX_SPAN_DAYS = 10 * 366
DEFAULT_MONTHS = 12
_DATE = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")
_DATE_ERRORS = {"invalid": "Enter a date as YYYY-MM-DD."}


def default_period(today: date | None = None) -> Period:
    today = today or timezone.now().date()
    months_back = today.year * 12 + today.month - 1 - (DEFAULT_MONTHS - 1)
    return Period(date(months_back // 12, months_back % 12 + 1, 1), today)


def _check_range(form: forms.Form, first: date | None, last: date | None, *, first_name: str, last_name: str):
    for name, value in ((first_name, first), (last_name, last)):
        if value is not None and not EARLIEST <= value <= LATEST:
            form.add_error(name, f"Choose a date between {EARLIEST.isoformat()} and {LATEST.isoformat()}.")
    if first and last and first > last:
        form.add_error(last_name, "The end date must not be before the start date.")
    elif first and last and (last - first).days > MAX_SPAN_DAYS:
        form.add_error(last_name, "Choose a range of at most ten years.")


class TeamChoiceField(forms.TypedChoiceField):
    """A team within the user's scope; anything else (unknown id, text) is a form error that does
    not echo the value back."""

    def __init__(self, choices, **kwargs):
        super().__init__(
            choices=[("", "All my teams"), *[(str(pk), name) for pk, name in choices]],
            coerce=int,
            empty_value=None,
            required=False,
            error_messages={"invalid_choice": "Choose one of the teams listed."},
            **kwargs,
        )


class DashboardFilterForm(forms.Form):
    date_from = forms.DateField(label="From", required=False, widget=_DATE, error_messages=_DATE_ERRORS)
    date_to = forms.DateField(label="To", required=False, widget=_DATE, error_messages=_DATE_ERRORS)

    def __init__(self, *args, team_choices=None, whole_months: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.whole_months = whole_months
        if team_choices is not None:
            self.fields["team"] = TeamChoiceField(team_choices, label="Team")

    def clean(self):
        data = super().clean()
        _check_range(self, data.get("date_from"), data.get("date_to"), first_name="date_from", last_name="date_to")
        return data

    def period(self) -> Period:
        """The chosen period (defaults: the last twelve months up to today)."""
        default = default_period()
        data = self.cleaned_data if self.is_bound else {}
        first = data.get("date_from") or default.first_day
        last = data.get("date_to") or max(default.last_day, first)
        period = Period(first, last)
        return period.whole_months() if self.whole_months else period

    def team_ids(self) -> frozenset[int] | None:
        """One chosen team, or None (the whole scope, as restrict() gives it)."""
        team = self.cleaned_data.get("team") if self.is_bound else None
        return frozenset([team]) if team is not None else None


class CustomerFilterForm(forms.Form):
    created_from = forms.DateField(label="Created from", required=False, widget=_DATE, error_messages=_DATE_ERRORS)
    created_to = forms.DateField(label="Created to", required=False, widget=_DATE, error_messages=_DATE_ERRORS)
    page = forms.IntegerField(required=False, min_value=1, max_value=100_000, widget=forms.HiddenInput)

    def __init__(self, *args, team_choices=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"] = TeamChoiceField(team_choices, label="Team")
        self.order_fields(["team", "created_from", "created_to", "page"])

    def clean(self):
        data = super().clean()
        _check_range(
            self, data.get("created_from"), data.get("created_to"), first_name="created_from", last_name="created_to"
        )
        return data


class EmailSearchForm(forms.Form):
    """Exact match through the blind index; sent by POST so the address never sits in a URL."""

    email = forms.EmailField(label="Email address", max_length=254)


class RevealForm(forms.Form):
    field = forms.ChoiceField(choices=[(f, f) for f in REVEALABLE_FIELDS], widget=forms.HiddenInput)
    reason = forms.CharField(
        label="Reason", min_length=10, max_length=500, widget=forms.TextInput(attrs={"autocomplete": "off"})
    )


class ExportForm(forms.Form):
    """Which rows come from the server (the list's filters or the saved report), never from here."""

    dataset = forms.ChoiceField(choices=[(name, name) for name in sorted(exports.COLUMNS)], widget=forms.HiddenInput)
    team = forms.IntegerField(required=False, min_value=1, max_value=10**15, widget=forms.HiddenInput)
    report = forms.IntegerField(required=False, min_value=1, max_value=10**15, widget=forms.HiddenInput)
    date_from = forms.DateField(required=False, widget=forms.HiddenInput, error_messages=_DATE_ERRORS)
    date_to = forms.DateField(required=False, widget=forms.HiddenInput, error_messages=_DATE_ERRORS)
    format = forms.ChoiceField(label="Format", choices=ExportFormat.choices, initial=ExportFormat.CSV)
    purpose = forms.CharField(
        label="Purpose of this export",
        min_length=10,
        max_length=500,
        help_text="Recorded in the audit trail with the export.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )

    def clean(self):
        data = super().clean()
        _check_range(self, data.get("date_from"), data.get("date_to"), first_name="date_from", last_name="date_to")
        return data


class ReportFilterForm(forms.Form):
    date_from = forms.DateField(label="From", required=False, widget=_DATE, error_messages=_DATE_ERRORS)
    date_to = forms.DateField(label="To", required=False, widget=_DATE, error_messages=_DATE_ERRORS)

    def clean(self):
        data = super().clean()
        _check_range(self, data.get("date_from"), data.get("date_to"), first_name="date_from", last_name="date_to")
        return data
