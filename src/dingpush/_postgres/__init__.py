"""State a fleet shares in PostgreSQL: the migration runner, the rate limiter, the token cache.

psycopg is imported when one of them is used, never by ``import dingpush``.
"""
