"""What the processes share: HTTP, health and readiness, metrics, pipes, process tuning."""

__all__: list[str] = []
