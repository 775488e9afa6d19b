"""Command line: ``dossier-stream`` and its commands."""

from dossier_stream.cli.main import main

__all__ = ["main"]
