"""``learner dashboard``: a read-only web page of every model of a Redis (README "Dashboard")."""

__all__: list[str] = []
