"""Every Redis key of a model, named in one place.

All keys of one model share the hash tag ``{NAME}`` (``learner:{fraud}:head``), so in a Redis
Cluster they live in one slot: the Lua scripts that touch several of them, and the pipelines of
the control plane, stay single-slot operations. An ACL that allows ``~learner:*`` covers them all.

A challenger of a model (README "Experiments") is a lineage of its own under the model's tag, so
it has every key a model has (head, versions, lease, ...) and shares the model's slot:

>>> keys = Keys("fraud")
>>> keys.head, keys.snapshot(12), keys.challengers
('learner:{fraud}:head', 'learner:{fraud}:snap:12', 'learner:{fraud}:challengers')
>>> Keys("fraud", challenger="trees").head
'learner:{fraud}:challenger:trees:head'
"""

from __future__ import annotations

__all__ = ["PREFIX", "Keys"]

#: Every key (and pub/sub channel) of the project starts with this.
PREFIX = "learner:"


class Keys:
    """The key names of one model."""

    def __init__(self, name: str, challenger: str | None = None) -> None:
        self.name, self.challenger = name, challenger
        self.model_prefix = f"{PREFIX}{{{name}}}:"
        self.prefix = self.model_prefix if challenger is None else f"{self.model_prefix}challenger:{challenger}:"
        #: Hash of the model's challengers: name -> where and how each started (JSON); the model's, not a lineage's.
        self.challengers = self.model_prefix + "challengers"
        #: Hash of the challengers promoted: name -> when (a restarted process of one must not register again).
        self.retired = self.model_prefix + "retired"
        #: The version the model continues from (an integer).
        self.head = self._key("head")
        #: Version numbers handed out so far (INCR): numbers only grow, failed writes leave gaps.
        self.seq = self._key("seq")
        #: Sorted set of the stored versions.
        self.versions = self._key("versions")
        #: Set of the pinned versions (kept forever; the guard's reference).
        self.pinned = self._key("pinned")
        #: Hash of the single-writer lease: holder token, epoch, who; expires unless renewed.
        self.lease = self._key("lease")
        #: The fencing epoch (INCR each time the lease changes hands).
        self.epoch = self._key("epoch")
        #: Hash of the last rollback: version, replay, at, seq (a count), the position to continue from.
        self.rollback = self._key("rollback")
        #: List of pending snapshot requests (``learner snapshot``).
        self.requests = self._key("requests")
        #: The running service's last published status (JSON, expires).
        self.status = self._key("status")
        #: The last status any service of this model published, kept for a day: with ``stopped`` (epoch
        #: seconds) after a clean stop, so ``learner status`` tells a stopped service from a dead one.
        self.last_status = self._key("last-status")
        #: Set while learning is stopped by the guard: why.
        self.guard = self._key("guard")
        #: Stream of the audit log.
        self.audit = self._key("audit")
        #: Stream of the typed timeline (snapshots, rollbacks, promotions, drift, guard, lease).
        self.timeline = self._key("timeline")
        #: Stream of the metric history (a point every few seconds).
        self.history = self._key("history")
        #: Stream of the keys the merge gave late messages (with a labels topic).
        self.late = self._key("late")
        #: Hash of the learner's latest lightweight publication for serve replicas: meta, sig, blob.
        self.live = self._key("live")
        #: Pub/sub channel: a message whenever the head, a rollback or the live model changes.
        self.announce = self._key("announce")

    def _key(self, suffix: str) -> str:
        return self.prefix + suffix

    def snapshot(self, version: int) -> str:
        """Hash of one snapshot: metadata JSON, its signature, the pickled state."""
        return self._key(f"snap:{version}")

    def reply(self, request: str) -> str:
        """List the service pushes its answer to a snapshot request onto."""
        return self._key(f"reply:{request}")
