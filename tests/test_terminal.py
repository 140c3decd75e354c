"""What a person reads on a terminal: "—" until a metric exists (never a made-up 0.0000), and
``learner status --watch`` redrawing the status until Ctrl-C, an error shown in its place."""

from __future__ import annotations

import pytest

from learner.core.evaluation import Evaluation, shown
from learner.errors import StateError
from learner.ops.watch import watch


def test_no_metric_before_the_first_scored_prediction() -> None:
    evaluation = Evaluation("binary", ("Accuracy", "LogLoss"))
    assert evaluation.values() == {} and shown(evaluation.values()) == "metrics —"
    evaluation.update(True, None, None)  # a model that had no answer yet: nothing scored
    assert evaluation.values() == {}
    evaluation.update(True, True, {True: 0.75, False: 0.25})
    assert shown(evaluation.values()) == "Accuracy 1.0000  LogLoss 0.2877"


def test_status_watch_redraws_until_ctrl_c(capsys: pytest.CaptureFixture[str]) -> None:
    calls = []

    def show() -> int:
        calls.append(len(calls))
        if len(calls) == 2:
            raise StateError("Redis at 127.0.0.1:1 refused the connection")
        if len(calls) == 4:
            raise KeyboardInterrupt
        print(f"model m: head version {len(calls)}")
        return 0

    assert watch(show, 0.01) == 0
    out = capsys.readouterr().out
    assert "model m: head version 3" in out and "every 0.01s (Ctrl-C to stop)" in out
    assert len(calls) == 4
