"""syncd: keeps a PostgreSQL contact table and a Selzy contact list in step, both ways."""

__version__ = "0.1.0"
