"""A challenger (``--role challenger``): a model process that learns its champion's stream under a lineage of its own.

It is the learner's program (``model/`` and ``gateway/``) with three differences, all made here or
in :mod:`learner.runtime.roles`: its first start begins from a champion version instead of from
nothing (:mod:`.begin`), it publishes nothing (no predictions, no dead letters, no live model), and
its keys and consumer group are its own (README "Experiments").
"""

__all__: list[str] = []
