"""Text that PostgreSQL can store.

A `text` value cannot hold U+0000: a NUL in a customer id or a name made the insert or
the query fail with a DataError, answered 500. Fields that reach the database carry this
pattern, so the NUL is a 422 naming the field (and the OpenAPI document says so).
"""

from __future__ import annotations

NO_NUL = r"^[^\x00]*$"
