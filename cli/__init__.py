"""The `inkloop` command line: the composition root. It builds the infrastructure (engines, clients, stores)
from settings and calls every other package; nothing imports it. One module per command group; `app.py`
registers them."""

from cli.app import app

__all__ = ["app"]
