"""Helpers shared by the tests."""

# The one key that seals every tenant's secrets in the shared test database, as one key does
# in a deployment: Siyu's commands refuse to start when it does not open them all.
TEST_SECRET_KEY = "test-secret-key"
