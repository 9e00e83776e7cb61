from django.urls import path

from compliance.governance_api import PseudonymisedOrdersView

urlpatterns = [
    path("pseudonymised-extract/orders/", PseudonymisedOrdersView.as_view(), name="pseudonymised-orders"),
]
