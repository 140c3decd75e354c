"""The roles of ``learner run``, in one table: what each does and the program that runs it.

A role is a value, not a branch: the command line looks its runner up here, the gateway asks it
whether to publish, and what a role ignores is derived from the settings themselves (each
learner-only or replica-only setting is marked with :class:`learner.settings.ReadBy`). A new role
is a row here and a folder of its own beside ``model/``, ``gateway/`` and ``replica/``.

>>> [(role.name, role.publishes, role.learns, role.dead_letters) for role in ROLES.values()]
[('all', True, True, True), ('learn', False, True, True), ('serve', True, False, True), ('challenger', False, True, False)]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from learner.settings import RoleName, Settings

if TYPE_CHECKING:
    from learner.runtime.model.service import Service

__all__ = ["ROLES", "Role", "role_of"]

#: Called every half second with the running model process (the terminal's status line).
OnProgress = Callable[["Service"], None]


def _learner(settings: Settings, on_progress: OnProgress | None) -> int:
    from learner.runtime.model.service import Service

    Service(settings).run(on_progress=on_progress)  # may wait a long time, as a standby, for the lease
    return 0


def _challenger(settings: Settings, on_progress: OnProgress | None) -> int:
    """A learner at the lowest CPU priority (both its processes, :attr:`Role.yields`): an experiment yields
    the CPU to the model in production and its gateway, and never preempts them."""
    from learner.runtime.shared.process import lower_priority

    lower_priority(role_of(settings).gateway_priority(settings))  # its model process as its gateway
    return _learner(settings, on_progress)


def _replica(settings: Settings, _on_progress: OnProgress | None) -> int:
    from learner.runtime.replica.loop import Replica

    return Replica(settings).run()  # waits for Kafka and Redis up to --startup-timeout


@dataclass(frozen=True)
class Role:
    """One role: what it does, what it says of the settings it ignores, and its program."""

    name: RoleName
    #: What it does, as said when it ignores a setting ("--role serve predicts only").
    does: str
    #: Who reads the settings it ignores.
    others: str
    publishes: bool
    learns: bool
    #: Whether it writes the dead letters of what it reads (a challenger reads what its champion
    #: already dead-letters, and counts them only).
    dead_letters: bool
    #: What a SIGTERM before it got going leaves behind, for the log.
    stopped_early: str
    run: Callable[[Settings, OnProgress | None], int]
    #: Both its processes at the lowest CPU priority (``SCHED_IDLE``), whatever ``--gateway-priority``
    #: says: an experiment runs on CPU time production does not use, and never preempts it.
    yields: bool = False

    def gateway_priority(self, settings: Settings) -> str:
        """The CPU priority of this role's gateway process."""
        return "idle" if self.yields else settings.gateway_priority

    def streams(self, settings: Settings) -> str:
        """What a running learner of this role streams, for its log."""
        if self.publishes:
            return f"{settings.input_topic} -> {settings.output_topic} (dead letters: {settings.dead_letter_topic})"
        if not self.dead_letters:
            return f"{settings.input_topic} as challenger {settings.challenger!r} of {settings.name!r}, publishing nothing"
        return f"{settings.input_topic}, learning only (dead letters: {settings.dead_letter_topic})"

    def say_ignored(self, settings: Settings) -> str | None:
        """One line naming the options given that this role does not read (never silently), or None."""
        ignored = settings.ignored()
        return f"--role {self.name} {self.does}: {', '.join(ignored)} apply to {self.others} and are ignored here" \
            if ignored else None


ROLES: dict[RoleName, Role] = {
    "all": Role("all", "predicts and learns", "serve replicas", publishes=True, learns=True, dead_letters=True,
                stopped_early="before streaming began: nothing was learned", run=_learner),
    "learn": Role("learn", "learns only", "serve replicas", publishes=False, learns=True, dead_letters=True,
                  stopped_early="before streaming began: nothing was learned", run=_learner),
    "serve": Role("serve", "predicts only", "the learner", publishes=True, learns=False, dead_letters=True,
                  stopped_early="before serving began", run=_replica),
    "challenger": Role("challenger", "learns beside its champion", "the champion or serve replicas", publishes=False,
                       learns=True, dead_letters=False, stopped_early="before streaming began: nothing was learned",
                       run=_challenger, yields=True),
}


def role_of(settings: Settings) -> Role:
    return ROLES[settings.role]
