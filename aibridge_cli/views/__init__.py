"""Self-contained HTML pages: data in, one HTML string out (no network, no templates)."""
