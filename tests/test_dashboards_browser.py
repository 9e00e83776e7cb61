"""The dashboards in a real browser: Playwright driving Debian's Chromium against the live server.

Playwright's sync API keeps an event loop in the thread that drives it, where Django refuses ORM
calls; so the browser lives in its own thread (``BrowserThread``) and each test hands it a
scenario, while data set-up and database checks stay in the test's thread.  A failing test
leaves a screenshot in ``test-artifacts/``.
"""

import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker

from audit.models import AuditEvent
from datasets.models import Export
from portal.celery import app
from tests.conftest import BOTH_DATABASES, Org
from tests.factories import PASSWORD, OrderFactory, PageViewFactory, give_authenticator, totp_code

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, databases=BOTH_DATABASES)]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
TIMEOUT_MS = 20_000
PURPOSE = "Quarterly churn review for the Sales board"


class BrowserThread:
    """One thread owns Playwright and Chromium; everything that touches them runs there."""

    def __init__(self):
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="playwright")
        self.call(self._start)

    def call(self, function, *args):
        return self._executor.submit(function, *args).result(timeout=180)

    def _start(self):
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        self.browser = self._playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

    def _stop(self):
        self.browser.close()
        self._playwright.stop()

    def stop(self):
        try:
            self.call(self._stop)
        finally:
            self._executor.shutdown(wait=True)


class Session:
    """A fresh browser context (no cookies) on the live server, for one test."""

    def __init__(self, thread: BrowserThread, base_url: str):
        self.thread = thread
        self.page = thread.call(self._open, base_url)

    def _open(self, base_url):
        context = self.thread.browser.new_context(base_url=base_url, accept_downloads=True)
        context.set_default_timeout(TIMEOUT_MS)
        return context.new_page()

    def run(self, scenario, *args):
        return self.thread.call(scenario, self.page, *args)

    def close(self, screenshot: Path | None):
        def finish(page):
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=True)
            page.context.close()

        self.thread.call(finish, self.page)


@pytest.fixture(scope="module")
def browser_thread():
    thread = BrowserThread()
    yield thread
    thread.stop()


@pytest.fixture
def web(browser_thread, live_server, request):
    session = Session(browser_thread, live_server.url)
    yield session
    report = getattr(request.node, "rep_call", None)
    failed = report is not None and report.failed
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    session.close(ARTIFACTS / f"{name}.png" if failed else None)


@pytest.fixture(scope="module")
def worker(django_db_blocker):
    with django_db_blocker.unblock(), start_worker(app, perform_ping_check=False, pool="solo", loglevel="WARNING"):
        yield


def one_time_code(user) -> str | None:
    """A current TOTP code for users whose role needs MFA (computed here: it reads the database)."""
    from accounts import policy

    if not policy.requires_mfa(user):
        return None
    return totp_code(give_authenticator(user))


# --- Scenarios (run in the browser thread) -------------------------------------------------


def sign_in(page, email: str, code: str | None):
    page.goto("/")
    page.wait_for_url(re.compile(r"/accounts/login/"))
    page.fill("#id_username", email)
    page.fill("#id_password", PASSWORD)
    page.click("main button[type=submit]")
    if code is not None:
        page.wait_for_url(re.compile(r"/accounts/mfa/verify/"))
        # Until the code is accepted the menu offers nothing but signing out.
        assert menu(page) == []
        page.fill("#id_code", code)
        page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r"/dashboards/[a-z]+/$"))
    return page.url


def menu(page) -> list[str]:
    return [text.strip() for text in page.locator("nav.menu ul a").all_inner_texts()]


def charts_ready(page) -> int:
    page.wait_for_selector("canvas[data-chart-ready='true']")
    canvases = page.locator("canvas[data-chart]").count()
    page.wait_for_function(
        "n => document.querySelectorAll(\"canvas[data-chart-ready='true']\").length === n", arg=canvases
    )
    return canvases


def activity(customers):
    for customer in customers:
        OrderFactory(customer=customer, status="paid")
        PageViewFactory(customer=customer)


# --- Tests ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "role,dashboard,menu_items",
    [
        ("analyst", "analyst", ["Dashboard", "Customers", "Reports", "Account"]),
        ("manager", "manager", ["Dashboard", "Customers", "Reports", "Exports", "Admin", "Account"]),
        ("executive", "executive", ["Dashboard", "Account"]),
        ("admin", "admin", ["Dashboard", "Customers", "Reports", "Exports", "Admin", "Account"]),
    ],
)
def test_each_role_signs_in_and_reaches_its_dashboard(web, role, dashboard, menu_items):
    org = Org(customers_per_team=3)
    activity(org.customers["North"] + org.customers["East"])
    user = getattr(org, role)
    code = one_time_code(user)

    def scenario(page):
        errors = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        url = sign_in(page, user.email, code)
        assert url.endswith(f"/dashboards/{dashboard}/")
        assert menu(page) == menu_items
        drawn = charts_ready(page)
        assert drawn >= 5
        # Each chart has its table beside it.
        assert page.locator("section.panel canvas").count() == page.locator("section.panel table").count()
        # The Content-Security-Policy (script-src 'self') refuses nothing: no inline script anywhere.
        refused = [e for e in errors if "Content Security Policy" in e or "Refused to" in e]
        assert refused == [], refused
        return page.content()

    html = web.run(scenario)
    assert AuditEvent.objects.filter(action="LOGIN", actor_id=user.pk).exists()
    if role == "executive":
        assert "&lt;5" in html
        for customer in org.customers["North"]:
            assert customer.email not in html and customer.name not in html


def test_customer_page_masks_per_role_and_shows_export_only_where_allowed(web):
    org = Org(customers_per_team=2)
    customer = org.customers["North"][0]
    analyst_code = one_time_code(org.analyst)

    def as_analyst(page):
        sign_in(page, org.analyst.email, analyst_code)
        page.click("nav.menu >> text=Customers")
        page.wait_for_url(re.compile(r"/customers/$"))
        table = page.locator("table.rows").inner_text()
        assert customer.email not in table and customer.phone not in table
        assert f"{customer.email[:3]}***@" in table and f"XXX-XXX-{customer.phone[-4:]}" in table
        assert page.locator("#export-button").count() == 0
        page.click(f"a[href='/customers/{customer.pk}/']")
        assert page.locator("#field-email").inner_text().startswith(f"{customer.email[:3]}***@")
        assert page.locator("button", has_text="Reveal").count() == 0
        # Search by email is a POST: the address never shows in the URL.
        page.goto("/customers/")
        page.fill("#id_email", customer.email)
        page.click("form.search button[type=submit]")
        page.wait_for_selector("text=1 exact match")
        assert customer.email not in page.url and "@" not in page.url

    web.run(as_analyst)
    manager_code = one_time_code(org.manager)

    def as_manager(page):
        page.context.clear_cookies()
        sign_in(page, org.manager.email, manager_code)
        page.goto("/customers/")
        assert customer.email in page.locator("table.rows").inner_text()
        assert page.locator("#export-button").count() == 1

    web.run(as_manager)


def test_executive_cannot_reach_any_row_page(web):
    org = Org(customers_per_team=3)
    activity(org.customers["North"])
    some = org.customers["North"][0]
    code = one_time_code(org.executive)

    def scenario(page):
        sign_in(page, org.executive.email, code)
        charts_ready(page)
        html = page.content()
        for path in ("/customers/", f"/customers/{some.pk}/", "/reports/", "/exports/", "/dashboards/analyst/"):
            response = page.goto(path)
            assert response.status == 403, path
            assert "Not allowed" in page.inner_text("main")
        response = page.goto(f"/api/v1/customers/{some.pk}/")
        assert response.status == 403
        return html

    html = web.run(scenario)
    for customers in org.customers.values():
        for customer in customers:
            assert customer.name not in html and customer.email not in html and customer.phone not in html
    assert "&lt;5" in html


def test_bad_filter_input_shows_a_form_error(web):
    org = Org(customers_per_team=1)
    code = one_time_code(org.analyst)

    def scenario(page):
        sign_in(page, org.analyst.email, code)
        response = page.goto("/dashboards/analyst/?date_from=2024-13-45&team=1%27%20OR%201%3D1--")
        assert response.status == 400
        alert = page.locator("[role=alert]").inner_text()
        assert "Enter a date as YYYY-MM-DD." in alert and "Choose one of the teams listed." in alert
        page.goto("/dashboards/analyst/")
        page.fill("#id_date_from", "2024-05-01")
        page.fill("#id_date_to", "2024-04-01")
        page.click("form.filters button[type=submit]")
        page.wait_for_selector("[role=alert]")
        assert "must not be before" in page.locator("[role=alert]").inner_text()

    web.run(scenario)


def test_manager_exports_with_purpose_progress_and_an_expiring_link(web, worker):
    org = Org(customers_per_team=3)
    org.north.manager = org.manager  # a manager exports the teams they manage (roles table: "team")
    org.north.save()
    code = one_time_code(org.manager)

    def scenario(page):
        sign_in(page, org.manager.email, code)
        page.goto("/customers/")
        page.click("details.export summary")
        page.fill("#id_purpose", PURPOSE)
        page.click("#export-button")
        page.wait_for_url(re.compile(r"/exports/[0-9a-f-]{36}/$"))
        page.wait_for_selector("#export-progress[data-export-state='done']", timeout=60_000)
        assert page.locator("#export-bar").get_attribute("value") == "100"
        link = page.locator("#export-download")
        assert "token=" in link.get_attribute("href")
        with page.expect_download() as info:
            link.click()
        return info.value.path().read_text()

    content = web.run(scenario)
    export = Export.objects.get(requested_by=org.manager)
    assert export.status == "done" and export.purpose == PURPOSE
    assert content.splitlines()[0].startswith("id,team_id,name")
    assert len(content.splitlines()) == 1 + 3  # North's customers only, not the whole department
    assert org.customers["North"][0].email in content
    deadline = time.monotonic() + 10
    while not AuditEvent.objects.filter(action="EXPORT_DATA", actor_id=org.manager.pk).exists():
        assert time.monotonic() < deadline
        time.sleep(0.2)
