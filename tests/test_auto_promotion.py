"""``--auto-promote``: the rule never fires between two identical specs (checked at every event, five
seeds: a false-promotion check on River's own answers), and a champion running it promotes a clearly
better challenger beside a poor one, through the real broker and Redis, audited like ``learner promote``,
and not while the guard is tripped."""

from __future__ import annotations

import orjson
import pytest
from river import datasets, ensemble, linear_model, preprocessing

from learner.core.auto_promotion import PromotionRule
from learner.core.paired import PairedDifference, loss_for
from learner.state.control import ControlPlane
from tests.conftest import Stack
from tests.test_challengers import challenger, wait_challenger

#: A long stream for the false-promotion check, and the seeds it is run with.
LONG = 20_000
SEEDS = range(5)


@pytest.mark.parametrize("seed", SEEDS)
def test_two_identical_specs_with_other_seeds_are_never_promoted(seed: int) -> None:
    """Bagged logistic regressions that differ only in their seed: any difference is chance. A fixed-horizon
    interval read at every event would cross zero; the confidence sequence, read at every event, does not."""
    def spec(s: int) -> preprocessing.StandardScaler:
        return preprocessing.StandardScaler() | ensemble.BaggingClassifier(linear_model.LogisticRegression(),
                                                                            n_models=3, seed=s)

    champion, other = spec(seed), spec(seed + 100)
    rule, loss, paired = PromotionRule(), loss_for("binary", ("Accuracy",)), PairedDifference()
    assert loss is not None
    fired = []
    for i, (x, y) in enumerate(datasets.synth.Agrawal(classification_function=2, seed=seed).take(LONG)):
        theirs, ours = champion.predict_one(x), other.predict_one(x)
        paired.add(loss.of(y, ours, None), loss.of(y, theirs, None))
        champion.learn_one(x, y)
        other.learn_one(x, y)
        if rule.qualifies("other", paired.interval(loss.name).to_dict()) is not None:
            fired.append(i)
    assert paired.discordant > 1000  # they did disagree, often
    assert not fired, f"promoted at events {fired[:5]}"


def _event(i: int) -> dict[str, object]:
    a, b = (i * 37 % 101) / 50 - 1, (i * 53 % 97) / 48 - 1
    return {"id": i, "x": {"i": i, "a": a, "b": b}, "y": a + 0.5 * b > 0}


EVENTS = [_event(i) for i in range(1500)]
COMMON = ("--lease-ttl", "2", "--snapshot-every-events", "100", "--snapshot-every-seconds", "0",
          "--batch-size", "50", "--metric", "Accuracy")


@pytest.mark.integration
def test_a_champion_promotes_a_clearly_better_challenger_by_itself(stack: Stack) -> None:
    """A majority-class champion with ``--auto-promote``; challengers from its first version: logistic
    regression (clearly better) and a constant (poor). Not while the guard is tripped; once it is lifted,
    the first is promoted, audited, adopted; the poor one stays a challenger."""
    stack.produce([orjson.dumps(e) for e in EVENTS[:200]])
    champion = stack.start("--model", "tests.models:counting_majority", *COMMON, "--auto-promote",
                           "--auto-promote-min-paired", "300")
    stack.wait_status(lambda s: s["events_done"] >= 200)
    store = stack.store()
    first = store.versions()[0]
    good = challenger(stack, "good", "--model", "logreg", "--from-version", str(first), "--lease-ttl", "2")
    poor = challenger(stack, "poor", "--model", "tests.models:constant_true", "--from-version", str(first),
                      "--lease-ttl", "2")
    wait_challenger(stack, "good", 200)
    wait_challenger(stack, "poor", 200)
    stack.wait_for_log("writing what is scored to", index=0)
    guard = ControlPlane(store)
    guard.stop_learning("tripped by the test")  # as the guard does: no promotion while it stands
    stack.produce([orjson.dumps(e) for e in EVENTS[200:]])
    stack.wait_for_log("challenger 'good' qualifies, but the guard is tripped", index=0)
    assert store.challengers.get("good") is not None and good.poll() is None
    assert guard.resume_learning()

    assert good.wait(180) == 0, stack.log()  # promoted: it stopped by itself
    stack.wait_for_log("auto-promote: challenger 'good'", index=0)
    promoted = max(store.pinned())
    meta = store.meta(promoted)
    assert meta.reason == "promotion" and meta.model_spec == "logreg"
    assert meta.extra["promoted"]["challenger"] == "good"
    assert meta.extra["promoted"]["who"].startswith("auto-promote")
    assert meta.extra["promoted"]["why"].startswith("auto-promote: mean difference -")
    stack.wait_status(lambda s: s["model_version"] >= promoted and s["model"] == "logreg")
    entries = [e for e in store.audit.entries() if e.action == "promotion"]
    assert len(entries) == 1 and entries[0].who.startswith("auto-promote") and "challenger good" in entries[0].detail
    assert store.challengers.get("poor") is not None and store.challengers.get("good") is None
    [noted] = [e for e in store.timeline.entries() if e.kind == "promotion"]
    assert noted.version == promoted and noted.detail["challenger"] == "good" and noted.who.startswith("auto-promote")
    assert stack.stop(poor) == 0
    assert stack.stop(champion) == 0
