"""The provider APIs aibridge intercepts, each a sans-io description of one API."""
