"""Helpers shared by the tests."""

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
