"""A champion's ``--auto-promote`` (README "Automatic promotion"): it promotes a clearly better challenger itself.

Every second, on a thread of its own (a promotion waits for the challenger's snapshot and its
stop: the stream never waits for that), the lease-holding champion reads each registered
challenger's running status, and :class:`~learner.core.auto_promotion.PromotionRule` decides on
its paired difference with a confidence sequence, which may be checked this often. The promotion
is :func:`~learner.state.promotion.promote_challenger`, the one ``learner promote`` runs, audited
with the rule's reason; the champion's own control poll then adopts it like any rollback.

It never acts while the guard is tripped, and, after a promotion, not again before the champion
has answered ``--auto-promote-min-paired`` more events: the other challengers' comparisons went on
across the switch (README "Promotion") and are given that long against the new champion first.
"""

from __future__ import annotations

import logging
import threading

from learner.core.auto_promotion import Choice, PromotionRule
from learner.errors import LearnerError
from learner.settings import Settings
from learner.state.control import ControlPlane
from learner.state.lease import Lease
from learner.state.promotion import promote_challenger
from learner.state.snapshots import SnapshotStore

__all__ = ["AutoPromoter"]

log = logging.getLogger(__name__)

#: Seconds between two looks at the challengers.
CHECK_SECONDS = 1.0


class AutoPromoter:
    """Looks at the challengers every second while this process holds the lease and its main thread runs."""

    def __init__(self, store: SnapshotStore, lease: Lease, settings: Settings) -> None:
        self.store, self.lease = store, lease
        self.rule = PromotionRule(settings.auto_promote_margin, settings.auto_promote_confidence,
                                  settings.auto_promote_min_paired)
        self.control = ControlPlane(store)
        self._quiet_until = 0  # the champion's events done before which it does not promote again
        self._said = ""  # the last problem logged (said once, not every second)
        # Not a daemon: a promotion under way completes before the process exits (the loop ends
        # with the main thread, or when the lease is gone).
        self._thread = threading.Thread(target=self._run, name="auto-promote")

    def start(self) -> None:
        log.info("auto-promote: a challenger is promoted once its paired loss is lower by more than %g at %g "
                 "confidence (a confidence sequence), after %d paired events", self.rule.margin,
                 self.rule.confidence, self.rule.min_paired)
        self._thread.start()

    def _run(self) -> None:
        pause = threading.Event()
        while threading.main_thread().is_alive() and self.lease.held:
            pause.wait(CHECK_SECONDS)
            if not (threading.main_thread().is_alive() and self.lease.held):
                return
            try:
                self.check()
            except LearnerError as error:  # Redis away, a challenger ahead or not snapshotting: try again later
                self._say(f"{error}; trying again every {CHECK_SECONDS:g}s")

    def _say(self, problem: str) -> None:
        """Log a reason not to promote once, not every second."""
        if problem != self._said:
            log.warning("auto-promote: %s", problem)
        self._said = problem

    def check(self) -> Choice | None:
        """Promote the challenger the rule chooses now, if any; the choice acted on."""
        ours = self.control.service_status()
        if ours is None or ours.events_done < self._quiet_until:
            return None
        differences = {}
        for enrolment in self.store.challengers.all():
            theirs = ControlPlane(self.store.lineage(enrolment.challenger)).service_status()
            differences[enrolment.challenger] = (theirs.pairing or {}).get("difference") if theirs else None
        choice = self.rule.choose(differences)
        if choice is None:
            return None
        if (tripped := self.control.guard_stop()) is not None:
            self._say(f"challenger {choice.challenger!r} qualifies, but the guard is tripped ({tripped}): no "
                      "promotion until `learner resume`")
            return None
        log.warning("auto-promote: challenger %r is better: %s; promoting it", choice.challenger, choice.describe())
        done = promote_challenger(self.store, choice.challenger, f"auto-promote: {choice.describe()}",
                                  who=f"auto-promote ({self.lease.who})")
        log.warning("auto-promote: challenger %r (%s) is version %d, the head; adopting it", choice.challenger,
                    done.spec, done.version)
        self._quiet_until = ours.events_done + self.rule.min_paired
        return choice
