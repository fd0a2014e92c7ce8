"""The pytest plugin: record a test's AI traffic once, replay it in CI (docs/pytest-plugin.md).

``plugin.py`` is the entry point pytest loads; the rest is imported by the first test
that uses it.
"""
