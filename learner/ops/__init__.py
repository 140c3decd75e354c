"""The operator's side: the command line, the operator commands, ``learner produce``'s feeds, logging."""

__all__: list[str] = []
