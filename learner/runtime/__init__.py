"""The two processes of ``learner run``: the model process and its gateway, and the parts they compose."""

__all__: list[str] = []
