"""A model's state in Redis: keys, scripts, signed snapshots, the lease, the audit log, the control plane."""

__all__: list[str] = []
