"""Test-only pause points in long-running work, so that a fault test can kill a worker exactly there.

A worker started with ``PORTAL_TEST_PAUSE_AFTER_STEP=<step>`` logs that it reached the step and
sleeps (``PORTAL_TEST_PAUSE_SECONDS``, default 300) instead of going on.  The variables are read
only when set, and never set in production."""

import logging
import os
import time

logger = logging.getLogger("portal.fault_points")
PAUSE_ENV = "PORTAL_TEST_PAUSE_AFTER_STEP"
PAUSE_SECONDS_ENV = "PORTAL_TEST_PAUSE_SECONDS"


def reached(step: str) -> None:
    wanted = os.environ.get(PAUSE_ENV)
    if wanted and wanted == step:
        logger.warning("pausing after step %s", step)
        time.sleep(float(os.environ.get(PAUSE_SECONDS_ENV, "300")))
