"""Helpers shared by the tests."""

from collections.abc import Iterator
from contextlib import contextmanager

# The one key that seals every tenant's secrets in the shared test database, as one key does
# in a deployment: Siyu's commands refuse to start when it does not open them all.
TEST_SECRET_KEY = "test-secret-key"


def new_tenant(db) -> int:
    """The id of a tenant of its own in `db`, with made-up WeCom credentials (nothing calls WeCom):
    for a test that writes a tenant's rows itself, apart from the other tests sharing the database."""
    import secrets

    from siyu.db.crypto import SecretBox
    from siyu.tenancy.service import CorpCredentials, save_tenant
    from siyu.wecom.crypto import new_encoding_aes_key

    creds = CorpCredentials("ww" + secrets.token_hex(8), 1, "a", "c", "t", new_encoding_aes_key())
    with db.system_session() as s:
        return save_tenant(s, SecretBox(TEST_SECRET_KEY), "t", creds, slug="f" + secrets.token_hex(4)).id


@contextmanager
def postgres_database(server_url: str, prefix: str) -> Iterator[str]:
    """The URL of a database made on the PostgreSQL server for the caller, dropped after (its
    connections too)."""
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = make_url(server_url)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
