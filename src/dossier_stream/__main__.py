"""``python -m dossier_stream`` is the ``dossier-stream`` command."""

from dossier_stream.cli import main

if __name__ == "__main__":  # not when a spawned child process (demo) imports it
    main()
