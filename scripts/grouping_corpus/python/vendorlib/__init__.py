"""A third-party client (not in app: the scenarios exclude it)."""
