"""Persistence: the typed ORM (models), engines and sessions (session), migrations (migrate) and queries (repo)."""
