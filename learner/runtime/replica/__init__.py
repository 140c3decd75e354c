"""A serve replica (``--role serve``): one process that predicts with the models the learner publishes."""

__all__: list[str] = []
