"""Persistence: SQLModel tables, engine and sessions, migrations and the atomic repository operations."""
