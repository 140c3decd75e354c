"""The learning service: models, the pure learning step, the loop, snapshots and the CLI."""

__version__ = "0.1.0"

__all__ = ["__version__"]
