"""The DPO's admin pages ask the policy about duties dozens of times per page; the user's groups are
read once per request, not once per question (92 queries on the admin index before, 14 after)."""

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from tests.gdpr_support import dpo_admin

pytestmark = pytest.mark.django_db(databases=["default", "owner"])


@pytest.mark.parametrize("url", ["/admin/", "/admin/compliance/subjectrequest/"])
def test_dpo_admin_pages_read_the_groups_once_per_request(org, url):
    client = dpo_admin(org.dpo)
    client.get(url)
    with CaptureQueriesContext(connections["default"]) as queries:
        response = client.get(url)
    assert response.status_code == 200
    group_reads = [q["sql"] for q in queries.captured_queries if "auth_group" in q["sql"]]
    assert len(group_reads) <= 2, group_reads  # the role, and the groups for the duties
    assert len(queries.captured_queries) <= 20
