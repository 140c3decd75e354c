"""The model process of ``learner run``: it owns the River model and its snapshots."""

__all__: list[str] = []
