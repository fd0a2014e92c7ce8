"""aibridge: record, replay and fuzz AI API traffic through a local trio proxy."""

__version__ = "0.1.0"
