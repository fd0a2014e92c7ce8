"""Fakes that play an upstream provider from a script: the scripted upstream (real sockets
or memory streams) and builders of Anthropic replies. Used by the tests, the built-in fixture
generator, ``aibridge import`` and black-box fuzzing."""
