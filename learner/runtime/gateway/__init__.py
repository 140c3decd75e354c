"""The gateway process of ``learner run``: Kafka in and out, and the protocol to the model process."""

__all__: list[str] = []
