"""``python -m dossier_stream`` is the ``dossier-stream`` command."""

from dossier_stream.cli import main

main()
