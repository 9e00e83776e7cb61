"""URLs of the load test's server (``bench/load_api.py``): the portal's, error handlers included,
plus the unsecured baseline routes of ``bench/baseline.py``.  Bench-only, never the portal's."""

from bench import baseline
from portal.urls import *  # noqa: F403 - Django reads handler404/handler500 from the root urlconf

urlpatterns = baseline.urlpatterns  # the portal's patterns plus /bench/unsecured-*
