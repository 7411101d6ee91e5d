"""Alembic migrations of the Nubes schema, shipped inside the package.

A package (not a bare folder) so that `env.py` is installed with the wheel;
`script.py.mako` and `versions/*.py` travel as package data. `env.py` is run
by Alembic, not imported: apply migrations with `Database.migrate()`.

Migrations are forward-only in operation (upgrades keep data); each still has
a `downgrade()`, for development and for the tests that prove it works.
"""
