"""The embedded stack: a broker and a Redis server from wheels, and the ``learner local`` demo."""

__all__: list[str] = []
