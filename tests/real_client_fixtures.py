"""The real-client tests' sentinel (every proxy variable points at it) as a fixture for
other modules, loaded with ``pytest_plugins`` (a fixture imported into a module would
shadow the test's argument)."""

from .test_real_clients import sentinel  # noqa: F401
