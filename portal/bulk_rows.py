"""Many rows in one statement, for bulk jobs (key rotation, demo and benchmark seeding).

``INSERT ... SELECT * FROM unnest(arrays)`` and ``UPDATE ... FROM unnest(arrays)``, with one
array per column sent as a *binary* parameter.  Every value still goes through its model field
(``get_db_prep_save``), so encrypted fields are encrypted under the current key and bound to
their column exactly as ``save()`` would.  Why not Django's ``bulk_create`` / ``bulk_update``:

* ``bulk_update`` builds a ``CASE WHEN pk=... THEN ...`` per column: quadratic in the batch, in
  Django (~20 s of expression building per 10,000 rows) and in PostgreSQL (each row scans the
  WHENs);
* both render every value as a literal in the SQL text (Django's psycopg cursor binds client
  side): ciphertext travels as hex and is escaped and parsed again, several times the cost.

The statements run on a server-binding psycopg cursor over the alias's own connection, so they
are part of the caller's transaction and security scope (``SET LOCAL`` role, row-level security).
Binary arrays carry their element type: no type name is spelled in the SQL, and identifiers are
composed with ``psycopg.sql``.
"""

import psycopg
from django.db import connections
from psycopg import sql
from psycopg.adapt import PyFormat


def _arrays(count: int) -> sql.Composable:
    return sql.SQL(", ").join([sql.Placeholder(format=PyFormat.BINARY)] * count)


def _typed(field, column: list) -> list:
    if all(value is None for value in column):
        # An array of NULLs alone has no element type for PostgreSQL to match to the column.
        raise ValueError(f"{field.model._meta.label}.{field.name} is NULL in every row: not supported here")
    return column


def insert(model, objs: list, using: str = "default") -> list:
    """Insert unsaved instances in one statement; set their primary keys (in order) and return them."""
    if not objs:
        return objs
    connection = connections[using]
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    columns = [_typed(f, [f.get_db_prep_save(f.pre_save(obj, True), connection) for obj in objs]) for f in fields]
    pk = model._meta.pk
    statement = sql.SQL("INSERT INTO {table} ({columns}) SELECT * FROM unnest({arrays}) RETURNING {pk}").format(
        table=sql.Identifier(model._meta.db_table),
        columns=sql.SQL(", ").join(sql.Identifier(f.column) for f in fields),
        arrays=_arrays(len(fields)),
        pk=sql.Identifier(pk.column),
    )
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(statement, columns, prepare=False)
        # INSERT ... SELECT FROM unnest returns the rows in the arrays' order (bulk_create's
        # UNNEST path relies on the same).
        keys = [row[0] for row in cursor.fetchall()]
    if len(keys) != len(objs):
        raise RuntimeError(f"{model._meta.label}: {len(keys)} of {len(objs)} rows inserted")
    for obj, key in zip(objs, keys, strict=True):
        setattr(obj, pk.attname, key)
        obj._state.adding = False
        obj._state.db = using
    return objs


def update(model, objs: list, field_names, using: str = "default") -> int:
    """Write ``field_names`` of saved instances back in one statement; return the rows updated.

    A column that is NULL in every instance is left as it is (there is nothing to write that the
    row does not hold, when the caller locked the rows it read)."""
    if not objs:
        return 0
    connection = connections[using]
    pk = model._meta.pk
    values = {}
    for name in field_names:
        field = model._meta.get_field(name)
        column = [field.get_db_prep_save(getattr(obj, field.attname), connection) for obj in objs]
        if any(value is not None for value in column):
            values[field] = column
    if not values:
        return 0
    aliases = [sql.Identifier(f"v{n}") for n in range(len(values))]
    statement = sql.SQL(
        "UPDATE {table} AS t SET {assignments} FROM unnest({arrays}) AS v({aliases}) WHERE t.{pk} = v.pk"
    ).format(
        table=sql.Identifier(model._meta.db_table),
        assignments=sql.SQL(", ").join(
            sql.SQL("{} = v.{}").format(sql.Identifier(f.column), alias)
            for f, alias in zip(values, aliases, strict=True)
        ),
        arrays=_arrays(len(values) + 1),
        aliases=sql.SQL(", ").join([*aliases, sql.Identifier("pk")]),
        pk=sql.Identifier(pk.column),
    )
    params = [*values.values(), [pk.get_db_prep_value(obj.pk, connection) for obj in objs]]
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(statement, params, prepare=False)
        return cursor.rowcount
