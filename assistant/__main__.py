"""``python -m assistant`` runs the CLI."""

from .cli import app

app()
