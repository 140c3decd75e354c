"""The pure core: the learning step, evaluation, drift, the guard rule, positions. No I/O."""

__all__: list[str] = []
