"""SQL of the executive's sanctioned path to company-wide figures: SECURITY DEFINER functions that return
aggregates only, with small groups suppressed in SQL.

Executive transactions see no row (``portal_executive`` has no row-level-security policy).  These
functions run as ``portal_aggregates``, a NOLOGIN role that no portal role can SET ROLE to, with
SELECT on the few non-personal columns they aggregate (never a name, email or phone column) and a
read-only policy on those tables.  EXECUTE is revoked from PUBLIC and granted to the roles in
``accounts.policy.SANCTIONED_AGGREGATE_ROLES`` only.

Subjects who withdrew their analytics consent or whose processing is restricted are left out, as
``compliance.selectors.analytics_consented`` leaves them out of every other analytics path.

Suppression, in SQL: a figure that counts people, or that is computed over a group of people,
is NULL (shown "<5") when the group has 1..threshold-1 distinct subjects (primary).  Within each
partition shown beside a total (months, departments, a currency's months), when the suppressed
groups together hold fewer than the threshold, the next smallest group is suppressed as well
(complementary), so that a total minus the shown groups never gives a small group away.

Every SQL text below is a literal constant (role names and the threshold are composed with
psycopg.sql), never built from input.  ``dashboards.migrations`` install it.
"""

from psycopg import sql

from accounts.policy import AGGREGATE_DEFINER_DB_ROLE, DB_ROLES, SANCTIONED_AGGREGATE_ROLES, SMALL_GROUP_THRESHOLD

# Columns the definer may read: ids, team, timestamps, amounts, pages; nothing personal.
COLUMN_GRANTS = {
    "datasets_customer": ["id", "team_id", "created_at"],
    "datasets_order": ["id", "customer_id", "team_id", "amount", "currency", "status", "created_at"],
    "datasets_pageview": ["id", "customer_id", "session_id", "team_id", "page", "timestamp"],
    "accounts_team": ["id", "department_id"],
    "accounts_department": ["id", "name"],
    # Who is left out of analytics (withdrawn analytics consent, restricted processing).
    "compliance_consentrecord": ["customer_id", "purpose", "current", "withdrawn_at"],
    "compliance_processingrestriction": ["customer_id", "lifted_at"],
}
RLS_TABLES = [
    "datasets_customer",
    "datasets_order",
    "datasets_pageview",
    "compliance_consentrecord",
    "compliance_processingrestriction",
]
THRESHOLD_FUNCTION = sql.SQL(
    "CREATE OR REPLACE FUNCTION portal_small_group_threshold() RETURNS integer"
    " LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT {}::integer $$"
).format(sql.Literal(SMALL_GROUP_THRESHOLD))

# Whether a figure over a group of ``subjects`` people is withheld: primary suppression (1 to
# threshold-1 people), or complementary (``hidden_before``: the people in the smaller groups of
# the same partition, all withheld, number 1 to threshold-1 together).  Zero people stays 0.
HIDDEN_FUNCTION = """
CREATE OR REPLACE FUNCTION portal_dash_hidden(subjects bigint, hidden_before numeric) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, public AS $$
  SELECT subjects BETWEEN 1 AND portal_small_group_threshold() - 1
      OR coalesce(hidden_before, 0) BETWEEN 1 AND portal_small_group_threshold() - 1
$$;
"""

# Pieces several functions share, composed into the texts below with psycopg.sql.
# Who is left out of analytics: withdrawn analytics consent, restricted processing.
_EXCLUDED = sql.SQL("""WITH excluded AS (SELECT customer_id FROM compliance_consentrecord
                   WHERE purpose = 'analytics' AND current AND withdrawn_at IS NOT NULL
                   UNION SELECT customer_id FROM compliance_processingrestriction WHERE lifted_at IS NULL),
""")
# From the per-key CTEs c (new customers), v (page views) and o (orders): the figures of every key
# ``k``, with primary and complementary suppression within the partition of keys.
_SUPPRESSED_BY_KEY = sql.SQL("""g AS (SELECT coalesce(c.k, v.k, o.k) AS k, coalesce(new_customers, 0) AS new_customers,
             coalesce(views, 0) AS views, coalesce(visitors, 0) AS visitors,
             coalesce(view_subjects, 0) AS view_subjects, coalesce(orders, 0) AS orders,
             coalesce(buyers, 0) AS buyers, coalesce(order_subjects, 0) AS order_subjects
      FROM c FULL JOIN v ON v.k = c.k FULL JOIN o ON o.k = coalesce(c.k, v.k)),
h AS (SELECT g.*,
             portal_dash_hidden(new_customers, sum(new_customers) OVER w_new) AS hide_new,
             portal_dash_hidden(visitors, sum(visitors) OVER w_visitors) AS hide_visitors,
             portal_dash_hidden(view_subjects, sum(view_subjects) OVER w_views) AS hide_views,
             portal_dash_hidden(buyers, sum(buyers) OVER w_buyers) AS hide_buyers,
             portal_dash_hidden(order_subjects, sum(order_subjects) OVER w_orders) AS hide_orders
      FROM g
      WINDOW w_new AS (ORDER BY new_customers, k ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
             w_visitors AS (ORDER BY visitors, k ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
             w_views AS (ORDER BY view_subjects, k ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
             w_buyers AS (ORDER BY buyers, k ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
             w_orders AS (ORDER BY order_subjects, k ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING))
SELECT k,
       CASE WHEN hide_new THEN NULL ELSE new_customers END,
       CASE WHEN hide_visitors THEN NULL ELSE visitors END,
       CASE WHEN hide_views THEN NULL ELSE views END,
       CASE WHEN hide_buyers THEN NULL ELSE buyers END,
       CASE WHEN hide_orders THEN NULL ELSE orders END,
       CASE WHEN hide_buyers OR hide_visitors OR visitors = 0 THEN NULL ELSE round(buyers::numeric / visitors, 4) END
FROM h ORDER BY k
$$;
""")

KPIS = sql.SQL("""
CREATE OR REPLACE FUNCTION portal_dash_kpis(p_start timestamptz, p_end timestamptz)
RETURNS TABLE (new_customers bigint, visitors bigint, views bigint, buyers bigint, orders bigint,
               conversion numeric)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
{excluded}
c AS (SELECT count(*) AS new_customers FROM datasets_customer x
      WHERE x.created_at >= p_start AND x.created_at < p_end
        AND NOT EXISTS (SELECT 1 FROM excluded e WHERE e.customer_id = x.id)),
v AS (SELECT count(*) AS views, count(DISTINCT x.customer_id) AS visitors,
             count(DISTINCT coalesce(x.customer_id::text, 's:' || x.session_id)) AS view_subjects
      FROM datasets_pageview x WHERE x."timestamp" >= p_start AND x."timestamp" < p_end
        AND NOT EXISTS (SELECT 1 FROM excluded e WHERE e.customer_id = x.customer_id)),
o AS (SELECT count(*) AS orders,
             count(DISTINCT x.customer_id) FILTER (WHERE x.status IN ('paid', 'shipped')) AS buyers,
             count(DISTINCT x.customer_id) AS order_subjects
      FROM datasets_order x WHERE x.created_at >= p_start AND x.created_at < p_end
        AND NOT EXISTS (SELECT 1 FROM excluded e WHERE e.customer_id = x.customer_id))
SELECT CASE WHEN portal_dash_hidden(new_customers, NULL) THEN NULL ELSE new_customers END,
       CASE WHEN portal_dash_hidden(visitors, NULL) THEN NULL ELSE visitors END,
       CASE WHEN portal_dash_hidden(view_subjects, NULL) THEN NULL ELSE views END,
       CASE WHEN portal_dash_hidden(buyers, NULL) THEN NULL ELSE buyers END,
       CASE WHEN portal_dash_hidden(order_subjects, NULL) THEN NULL ELSE orders END,
       CASE WHEN portal_dash_hidden(buyers, NULL) OR portal_dash_hidden(visitors, NULL) OR visitors = 0 THEN NULL
            ELSE round(buyers::numeric / visitors, 4) END
FROM c, v, o
$$;
""").format(excluded=_EXCLUDED)

MONTHLY = sql.SQL("""
CREATE OR REPLACE FUNCTION portal_dash_monthly(p_start timestamptz, p_end timestamptz)
RETURNS TABLE (month date, new_customers bigint, visitors bigint, views bigint, buyers bigint, orders bigint,
               conversion numeric)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
{excluded}
c AS (SELECT date_trunc('month', x.created_at AT TIME ZONE 'UTC')::date AS k, count(*) AS new_customers
      FROM datasets_customer x WHERE x.created_at >= p_start AND x.created_at < p_end
        AND NOT EXISTS (SELECT 1 FROM excluded e WHERE e.customer_id = x.id) GROUP BY 1),
v AS (SELECT date_trunc('month', x."timestamp" AT TIME ZONE 'UTC')::date AS k, count(*) AS views,
             count(DISTINCT x.customer_id) AS visitors,
             count(DISTINCT coalesce(x.customer_id::text, 's:' || x.session_id)) AS view_subjects
      FROM datasets_pageview x WHERE x."timestamp" >= p_start AND x."timestamp" < p_end
        AND NOT EXISTS (SELECT 1 FROM excluded e WHERE e.customer_id = x.customer_id) GROUP BY 1),
o AS (SELECT date_trunc('month', x.created_at AT TIME ZONE 'UTC')::date AS k, count(*) AS orders,
             count(DISTINCT x.customer_id) FILTER (WHERE x.status IN ('paid', 'shipped')) AS buyers,
             count(DISTINCT x.customer_id) AS order_subjects
      FROM datasets_order x WHERE x.created_at >= p_start AND x.created_at < p_end
        AND NOT EXISTS (SELECT 1 FROM excluded e WHERE e.customer_id = x.customer_id) GROUP BY 1),
{suppressed_by_key}""").format(excluded=_EXCLUDED, suppressed_by_key=_SUPPRESSED_BY_KEY)

DEPARTMENTS = sql.SQL("""
CREATE OR REPLACE FUNCTION portal_dash_departments(p_start timestamptz, p_end timestamptz)
RETURNS TABLE (department text, new_customers bigint, visitors bigint, views bigint, buyers bigint, orders bigint,
               conversion numeric)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
{excluded}
team AS (SELECT t.id, d.name::text AS k FROM accounts_team t JOIN accounts_department d ON d.id = t.department_id),
c AS (SELECT team.k, count(*) AS new_customers
      FROM datasets_customer x JOIN team ON team.id = x.team_id
      WHERE x.created_at >= p_start AND x.created_at < p_end
        AND NOT EXISTS (SELECT 1 FROM excluded e WHERE e.customer_id = x.id) GROUP BY 1),
v AS (SELECT team.k, count(*) AS views, count(DISTINCT x.customer_id) AS visitors,
             count(DISTINCT coalesce(x.customer_id::text, 's:' || x.session_id)) AS view_subjects
      FROM datasets_pageview x JOIN team ON team.id = x.team_id
      WHERE x."timestamp" >= p_start AND x."timestamp" < p_end
        AND NOT EXISTS (SELECT 1 FROM excluded e WHERE e.customer_id = x.customer_id) GROUP BY 1),
o AS (SELECT team.k, count(*) AS orders,
             count(DISTINCT x.customer_id) FILTER (WHERE x.status IN ('paid', 'shipped')) AS buyers,
             count(DISTINCT x.customer_id) AS order_subjects
      FROM datasets_order x JOIN team ON team.id = x.team_id
      WHERE x.created_at >= p_start AND x.created_at < p_end
        AND NOT EXISTS (SELECT 1 FROM excluded e WHERE e.customer_id = x.customer_id) GROUP BY 1),
{suppressed_by_key}""").format(excluded=_EXCLUDED, suppressed_by_key=_SUPPRESSED_BY_KEY)

REVENUE = sql.SQL("""
CREATE OR REPLACE FUNCTION portal_dash_revenue(p_start timestamptz, p_end timestamptz)
RETURNS TABLE (month date, currency text, revenue numeric)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
{excluded}
cells AS (SELECT date_trunc('month', x.created_at AT TIME ZONE 'UTC')::date AS month, x.currency::text AS currency,
                 sum(x.amount) AS revenue, count(DISTINCT x.customer_id) AS buyers
          FROM datasets_order x
          WHERE x.created_at >= p_start AND x.created_at < p_end AND x.status IN ('paid', 'shipped')
            AND NOT EXISTS (SELECT 1 FROM excluded e WHERE e.customer_id = x.customer_id)
          GROUP BY 1, 2)
SELECT month, currency,
       CASE WHEN portal_dash_hidden(buyers, sum(buyers) OVER (PARTITION BY currency ORDER BY buyers, month
                                                              ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING))
            THEN NULL ELSE revenue END
FROM cells ORDER BY currency, month
$$;
""").format(excluded=_EXCLUDED)

TOP_PAGES = sql.SQL("""
CREATE OR REPLACE FUNCTION portal_dash_top_pages(p_start timestamptz, p_end timestamptz, p_limit integer)
RETURNS TABLE (page text, views bigint, visitors bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
{excluded}
p AS (SELECT x.page::text AS page, count(*) AS views, count(DISTINCT x.customer_id) AS visitors,
             count(DISTINCT coalesce(x.customer_id::text, 's:' || x.session_id)) AS subjects
      FROM datasets_pageview x WHERE x."timestamp" >= p_start AND x."timestamp" < p_end
        AND NOT EXISTS (SELECT 1 FROM excluded e WHERE e.customer_id = x.customer_id)
      GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT least(greatest(p_limit, 0), 25))
SELECT page,
       CASE WHEN portal_dash_hidden(subjects, NULL) THEN NULL ELSE views END,
       CASE WHEN portal_dash_hidden(visitors, NULL) THEN NULL ELSE visitors END
FROM p ORDER BY p.views DESC, page
$$;
""").format(excluded=_EXCLUDED)

# name -> (argument types, CREATE statement); all SECURITY DEFINER, owned by the definer role.
FUNCTIONS = {
    "portal_dash_kpis": ("timestamptz, timestamptz", KPIS),
    "portal_dash_monthly": ("timestamptz, timestamptz", MONTHLY),
    "portal_dash_departments": ("timestamptz, timestamptz", DEPARTMENTS),
    "portal_dash_revenue": ("timestamptz, timestamptz", REVENUE),
    "portal_dash_top_pages": ("timestamptz, timestamptz, integer", TOP_PAGES),
}


def _signature(name: str, args: str) -> sql.Composable:
    return sql.SQL("{}({})").format(sql.Identifier(name), sql.SQL(args))


def install(cursor) -> None:
    """Create the definer role, its column grants and read policies, and the functions."""
    definer = sql.Identifier(AGGREGATE_DEFINER_DB_ROLE)
    callers = sql.SQL(", ").join(sql.Identifier(DB_ROLES[role]) for role in sorted(SANCTIONED_AGGREGATE_ROLES))
    cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [AGGREGATE_DEFINER_DB_ROLE])
    if cursor.fetchone() is None:
        cursor.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(definer))
    cursor.execute(sql.SQL("ALTER ROLE {} NOLOGIN NOINHERIT NOSUPERUSER NOBYPASSRLS NOCREATEDB").format(definer))
    cursor.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(definer))
    for table, columns in COLUMN_GRANTS.items():
        cursor.execute(
            sql.SQL("GRANT SELECT ({}) ON {} TO {}").format(
                sql.SQL(", ").join(sql.Identifier(c) for c in columns), sql.Identifier(table), definer
            )
        )
    for table in RLS_TABLES:
        policy_name = sql.Identifier(f"{table}_{AGGREGATE_DEFINER_DB_ROLE}")
        cursor.execute(sql.SQL("DROP POLICY IF EXISTS {} ON {}").format(policy_name, sql.Identifier(table)))
        cursor.execute(
            sql.SQL("CREATE POLICY {} ON {} FOR SELECT TO {} USING (true)").format(
                policy_name, sql.Identifier(table), definer
            )
        )
    cursor.execute(THRESHOLD_FUNCTION)
    cursor.execute(HIDDEN_FUNCTION)
    cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    superuser = cursor.fetchone()[0]
    if not superuser:
        # ALTER ... OWNER needs membership in the new owner and its CREATE on the schema.
        cursor.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(definer))
        cursor.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(definer))
    for name, (args, body) in FUNCTIONS.items():
        signature = _signature(name, args)
        cursor.execute(body)
        cursor.execute(sql.SQL("ALTER FUNCTION {} OWNER TO {}").format(signature, definer))
        cursor.execute(sql.SQL("REVOKE ALL ON FUNCTION {} FROM PUBLIC").format(signature))
        cursor.execute(sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(signature, callers))
    if not superuser:
        cursor.execute(sql.SQL("REVOKE CREATE ON SCHEMA public FROM {}").format(definer))


def uninstall(cursor) -> None:
    definer = sql.Identifier(AGGREGATE_DEFINER_DB_ROLE)
    for name, (args, _body) in FUNCTIONS.items():
        cursor.execute(sql.SQL("DROP FUNCTION IF EXISTS {}").format(_signature(name, args)))
    cursor.execute("DROP FUNCTION IF EXISTS portal_dash_hidden(bigint, numeric)")
    cursor.execute("DROP FUNCTION IF EXISTS portal_small_group_threshold()")
    for table in RLS_TABLES:
        cursor.execute(
            sql.SQL("DROP POLICY IF EXISTS {} ON {}").format(
                sql.Identifier(f"{table}_{AGGREGATE_DEFINER_DB_ROLE}"), sql.Identifier(table)
            )
        )
    for table in COLUMN_GRANTS:
        cursor.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(sql.Identifier(table), definer))
