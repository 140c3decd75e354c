"""Rollback adoption's decisions, on stand-ins for the parts around it (pure logic, no Redis)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from learner.runtime.model.late_order import LateOrder
from learner.runtime.model.rollback import RollbackAdopter
from learner.state.control import ControlView


class Snapshots(SimpleNamespace):
    """A stand-in for the snapshot coordinator: what adoption reads of it, and what it tells it."""

    def rebased(self, rollbacks: int) -> None:
        self.rollbacks, self.owed = rollbacks, True


class Model(SimpleNamespace):
    """A stand-in for the live model: its head, and being told of a lost write."""

    def rebase(self, head: int) -> None:
        self.head = head


def adopter(head: int, written_at: float) -> tuple[RollbackAdopter, Any]:
    model = Model(head=head)
    snapshots = Snapshots(busy=False, rollbacks=0, written_at=written_at, owed=False)
    sync = SimpleNamespace(submit=lambda *_: None)
    return RollbackAdopter(model, None, None, snapshots, sync, None, SimpleNamespace(name="m"),  # type: ignore[arg-type]
                           LateOrder(None, None, labelled=False)), snapshots  # type: ignore[arg-type]


def test_a_view_polled_before_our_own_snapshot_is_not_a_lost_write() -> None:
    """Polled at t=1 (head 1), our snapshot 2 written at t=2, the view handed over at t=3: stale, not a failover."""
    adopt, snapshots = adopter(head=2, written_at=2.0)
    adopt.consider(ControlView(head=1, rollbacks=0, requests=[], guard_stop=None, taken_at=1.0))
    assert not snapshots.owed and adopt.model.head == 2


def test_a_head_that_went_back_after_our_snapshot_is_a_lost_write() -> None:
    adopt, snapshots = adopter(head=2, written_at=2.0)
    adopt.consider(ControlView(head=1, rollbacks=0, requests=[], guard_stop=None, taken_at=5.0))
    assert snapshots.owed and adopt.model.head == 1  # saved again, on top of what Redis kept
