"""Customer list (filters, exact email search by POST through the blind index) and detail pages,
masked per role by the policy's masking table, with "reveal" only where a grant allows it."""

from datetime import UTC, datetime, time, timedelta

from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_http_methods, require_POST
from rest_framework import exceptions as drf

from accounts import policy
from audit import services as audit
from audit.choices import AuditAction
from dashboards import selectors as dash_selectors
from dashboards.access import row_page
from dashboards.forms import CustomerFilterForm, EmailSearchForm, ExportForm, RevealForm
from datasets import masking, services
from datasets import selectors as dataset_selectors
from datasets.models import Customer, Order, PageView

PAGE_SIZE = 50
RECENT_ORDERS = 20
MASKED_FIELDS = ("name", "email", "phone", "card_last4")


def _masks(user) -> dict:
    return policy.masking_for(policy.access(user, policy.Action.VIEW).role) or {}


def masked_row(customer: Customer, masks: dict) -> dict:
    values = {f: getattr(customer, f) for f in MASKED_FIELDS}
    shown = masking.mask_record({k: v for k, v in masks.items() if k in values}, values)
    return {"id": customer.pk, "team": customer.team.name, "created_at": customer.created_at, **shown}


def _day_start(day):
    return datetime.combine(day, time.min, tzinfo=UTC)


@require_http_methods(["GET", "POST"])
@row_page
def customer_list(request):
    user = request.user
    team_choices = dash_selectors.team_choices(user)
    filters = CustomerFilterForm(request.GET or None, team_choices=team_choices)
    search = EmailSearchForm(request.POST or None)
    context = {"filters": filters, "search": search, "may_export": policy.may_export(user), "searched": False}
    if filters.is_bound and not filters.is_valid():
        return render(request, "dashboards/customers.html", context, status=400)
    data = filters.cleaned_data if filters.is_bound else {}
    customers = Customer.objects.restrict(user, policy.Action.VIEW).select_related("team").order_by("id")
    action = AuditAction.VIEW
    if request.method == "POST":
        if not search.is_valid():
            return render(request, "dashboards/customers.html", context, status=400)
        # Exact match on the keyed hash: the address is never decrypted-and-scanned, nor put in a URL.
        customers = customers.by_email(search.cleaned_data["email"])
        context["searched"] = True
        action = AuditAction.SEARCH
    else:
        if data.get("team"):
            customers = customers.filter(team_id=data["team"])
        if data.get("created_from"):
            customers = customers.filter(created_at__gte=_day_start(data["created_from"]))
        if data.get("created_to"):
            customers = customers.filter(created_at__lt=_day_start(data["created_to"]) + timedelta(days=1))
    page = Paginator(customers, PAGE_SIZE).get_page(data.get("page") or 1)
    masks = _masks(user)
    rows = [masked_row(c, masks) for c in page.object_list]
    audit.record(action, actor=user, resource="customer", object_ids=[r["id"] for r in rows], rows=len(rows))
    query = request.GET.copy()
    query.pop("page", None)
    context.update(
        page=page,
        rows=rows,
        query=query.urlencode(),
        export_form=ExportForm(
            initial={
                "dataset": "customers",
                "team": data.get("team"),
                "date_from": data.get("created_from"),
                "date_to": data.get("created_to"),
            }
        ),
        export_scope=policy.access(user, policy.Action.EXPORT).scope.value,
    )
    return render(request, "dashboards/customers.html", context)


def _detail_context(request, pk):
    user = request.user
    customer = Customer.objects.restrict(user, policy.Action.VIEW).select_related("team").filter(pk=pk).first()
    if customer is None:
        raise Http404  # out of scope and missing look the same
    orders = list(
        Order.objects.restrict(user, policy.Action.VIEW)
        .filter(customer_id=customer.pk)
        .order_by("-created_at")
        .values("id", "amount", "currency", "status", "created_at")[:RECENT_ORDERS]
    )
    page_views = PageView.objects.restrict(user, policy.Action.VIEW).filter(customer_id=customer.pk).count()
    admin_link = ""
    if user.is_staff:
        try:
            admin_link = reverse("admin:datasets_customer_change", args=[customer.pk])
        except NoReverseMatch:
            admin_link = ""
    return customer, {
        "customer": masked_row(customer, _masks(user)),
        "orders": orders,
        "page_views": page_views,
        "revealable": dataset_selectors.revealable_fields(user, customer.pk),
        "admin_link": admin_link,
        "revealed": {},
        "reveal_form": None,
    }


@require_http_methods(["GET"])
@row_page
def customer_detail(request, pk):
    customer, context = _detail_context(request, pk)
    audit.record(AuditAction.VIEW, actor=request.user, resource="customer", object_ids=[customer.pk], rows=1)
    return render(request, "dashboards/customer_detail.html", context)


@require_POST
@row_page
def customer_reveal(request, pk):
    """Unmask one field with a reason (datasets.services.reveal_field audits it, allowed or not).
    The clear value is in this response only: never stored, never in a URL."""
    customer, context = _detail_context(request, pk)
    form = RevealForm(request.POST)
    context["reveal_form"] = form
    if not form.is_valid():
        return render(request, "dashboards/customer_detail.html", context, status=400)
    field = form.cleaned_data["field"]
    try:
        value = services.reveal_field(request.user, customer.pk, field, form.cleaned_data["reason"])
    except drf.NotFound:
        raise Http404 from None
    except drf.PermissionDenied:
        context["reveal_error"] = "No active grant lets you reveal this field."
        return render(request, "dashboards/customer_detail.html", context, status=403)
    except drf.ValidationError as exc:
        for messages in exc.detail.values():
            for message in messages:
                form.add_error(None, str(message))
        return render(request, "dashboards/customer_detail.html", context, status=400)
    context["revealed"] = {field: value}
    return render(request, "dashboards/customer_detail.html", context)
