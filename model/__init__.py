"""The recognizer: networks, training, export and its runtimes, inference, evaluation, the registry and the gates.

`SHIPPED_MODEL` is the artifact a fresh installation serves until the registry has a champion (`make base-model`,
`make base-model-gpu`; CHANGELOG.md); naming it here lets light code (the registry, the CLI) find it without
importing the network."""

from pathlib import Path

SHIPPED_MODEL = Path(__file__).resolve().parent / "artifacts" / "base.pt"
