"""What a snapshot (and the live model) pickles: the model and what learns beside it.

One definition for the writer (the snapshot coordinator, the live publisher) and the readers
(restore, a replica's follower, ``learner export``). On the wire it stays the plain dict every
release has written (``{"model", "learned", "scorecard", "labels", "marks"}``; the first releases
wrote ``"evaluation"`` instead of ``"scorecard"``), so a snapshot of an earlier release loads here
and a replica of the last release reads what this one writes (README "Snapshots, history and
rollback").

>>> from river import linear_model
>>> state = SnapshotState(linear_model.LogisticRegression(), learned=3)
>>> sorted(state.to_dict())
['learned', 'model']
>>> SnapshotState.from_dict(state.to_dict()).learned
3
>>> SnapshotState.from_dict({"learned": 3})
Traceback (most recent call last):
...
ValueError: it holds no model
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from learner.core.evaluation import Evaluation
from learner.core.labels import LabelJoin
from learner.core.scorecard import Scorecard

__all__ = ["SnapshotState"]


@dataclass
class SnapshotState:
    """A model lineage at one event boundary, as pickled."""

    model: Any
    #: Events learned by the lineage up to this boundary.
    learned: int
    scorecard: Scorecard | None = None
    #: Snapshots of the first releases kept the evaluation alone (no drift detectors).
    evaluation: Evaluation | None = None
    #: With a labels topic: the features waiting for their labels, and the merge's mark per partition.
    labels: LabelJoin | None = None
    marks: dict[tuple[str, int], int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The pickled form: only what is there (a live model carries the model and its count)."""
        out: dict[str, Any] = {"model": self.model, "learned": self.learned}
        if self.scorecard is not None:
            out["scorecard"] = self.scorecard
        if self.evaluation is not None:
            out["evaluation"] = self.evaluation
        if self.labels is not None:
            out |= {"labels": self.labels, "marks": dict(self.marks)}
        return out

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> SnapshotState:
        """Read back what any release wrote; a ValueError (or TypeError) when it holds no usable model."""
        if "model" not in state:
            raise ValueError("it holds no model")
        if "learned" not in state:
            raise ValueError("it holds no count of the events learned")
        scorecard, evaluation, labels = state.get("scorecard"), state.get("evaluation"), state.get("labels")
        return cls(state["model"], int(state["learned"]),
                   scorecard if isinstance(scorecard, Scorecard) else None,
                   evaluation if isinstance(evaluation, Evaluation) else None,
                   labels if isinstance(labels, LabelJoin) else None,
                   dict(state.get("marks") or {}))
