"""dossier-stream: administrative-procedure dossier events in, official indicators out.

The public surface is small; everything else is reached through its module.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
