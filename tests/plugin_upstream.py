"""The scripted upstream of ``test_pytest_plugin.py`` as a fixture for the plugin's other
test modules, which load it with ``pytest_plugins`` (a fixture imported into a module
would shadow the test's argument)."""

from .test_pytest_plugin import upstream  # noqa: F401
