"""Settings of the load test's server (``bench/load_api.py``): bench-only, never the portal's.

The production settings unchanged, plus the unsecured baseline routes (``bench.load_urls``: the
portal's urlconf with ``/bench/unsecured-*`` from ``bench/baseline.py`` added), so that the
secured endpoints and the baseline are served by the very same gunicorn processes.
"""

from portal.settings import *  # noqa: F403
from portal.settings import DATABASES

ROOT_URLCONF = "bench.load_urls"

# The baseline reads through the ``owner`` alias, which production never serves from and which
# therefore opens a fresh connection per request (CONN_MAX_AGE 0).  A connection per request is
# not a security layer: give the alias the app's persistent connections, so that the ratio
# measures the security work and not a TCP + authentication handshake.
DATABASES["owner"] = {**DATABASES["owner"], "CONN_MAX_AGE": DATABASES["default"]["CONN_MAX_AGE"]}
