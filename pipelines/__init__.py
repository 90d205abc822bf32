"""Pipeline definitions, per-environment settings and compiled specs."""
