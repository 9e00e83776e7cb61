"""Covering indexes for the dashboards' aggregates over a team and a date range.

A team's page views and orders are spread over the whole table, so a bitmap scan of
``(team_id, timestamp)`` still reads nearly every heap page.  With the aggregated columns in the
index, PostgreSQL answers from the index alone (index-only scan); row-level security's
``team_id = ANY (portal_team_ids())`` stays an index condition.  Built CONCURRENTLY: no write is
blocked on a large table.
"""

from django.db import migrations

PAGEVIEW = (
    'CREATE INDEX CONCURRENTLY IF NOT EXISTS dash_pageview_team_ts_cover ON datasets_pageview (team_id, "timestamp")'
    " INCLUDE (customer_id, page)"
)
ORDER = (
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS dash_order_team_created_cover ON datasets_order (team_id, created_at)"
    " INCLUDE (customer_id, status, amount, currency)"
)


class Migration(migrations.Migration):
    atomic = False
    dependencies = [("dashboards", "0001_sanctioned_aggregates")]

    operations = [
        migrations.RunSQL(PAGEVIEW, "DROP INDEX CONCURRENTLY IF EXISTS dash_pageview_team_ts_cover"),
        migrations.RunSQL(ORDER, "DROP INDEX CONCURRENTLY IF EXISTS dash_order_team_created_cover"),
    ]
