"""``learner backtest``: replay what Kafka retains of a model's input through other specs, from one of
its versions, and compare each with the live lineage on exactly the same events (README "Experiments").

The live column is the start version's own model replayed over the same items: with a labels topic
(the merged order is the service's) and on one partition, that is what the live lineage learned and
scored, prediction for prediction, since the command runs with the model's hash seed. Nothing is
written to Redis: the backtest reads the version, the late log and the topics, and prints.
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from learner.connections import Connections
from learner.core.contender import Batch, Contender
from learner.core.evaluation import Evaluation, metrics_for
from learner.core.models import Task, build_model, comparable, kind_of
from learner.core.paired import shown
from learner.core.pairing import Pairing
from learner.core.step import LearningStep
from learner.errors import SnapshotMissing, UsageError
from learner.ops.retained import Range, RetainedInput
from learner.ops.save_as import SaveAs, check_free, save_challenger
from learner.runtime.model.restore import new_join, restored_from
from learner.runtime.shared.intake import Intake
from learner.settings import Settings
from learner.state.snapshots import LoadedSnapshot, SnapshotStore
from learner.topics import TopicNames

__all__ = ["BacktestRequest", "run_backtest", "start_version"]

#: Messages read per batch.
BATCH = 2000
#: What a table shows for a figure that does not exist yet (no event paired), never a made-up 0.
NONE = "—"


@dataclass(frozen=True)
class BacktestRequest:
    """What the command was asked (its options)."""

    specs: tuple[str, ...]
    from_version: int | None = None
    from_time: str | None = None
    fork: bool = False
    until: str = "head"
    as_json: bool = False
    #: Keep the replayed model as this challenger (one spec only).
    save_as: str | None = None


@dataclass
class _Entry:
    """One spec under test: its model, and its pairing with the live column."""

    spec: str
    contender: Contender
    pairing: Pairing
    seconds: float = 0.0


def start_version(store: SnapshotStore, version: int | None, when: str | None) -> int:
    """The version asked for, or the newest one created at or before ``when`` (ISO 8601, or seconds
    since the epoch)."""
    if version is not None:
        store.meta(version)  # it exists and is signed
        return version
    assert when is not None
    moment = _moment(when)
    best = None
    for candidate in store.versions():
        if store.meta(candidate).created <= moment:
            best = candidate
    if best is None:
        raise SnapshotMissing(f"{store.name!r} has no version created at or before {when}")
    return best


def _moment(when: str) -> float:
    try:
        return float(when)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(when)
    except ValueError:
        raise UsageError(f"--from-time {when!r}: give an ISO 8601 time (2026-12-06T13:00:00) or seconds since the epoch") \
            from None
    return moment.timestamp()


def run_backtest(settings: Settings, request: BacktestRequest) -> int:
    """Replay, compare, print; 0 when done."""
    if not request.specs and not request.fork:
        raise UsageError("give at least one --model (a preset or package.module:callable), or --fork")
    if request.save_as is not None and len(request.specs) > 1:
        raise UsageError("--save-as keeps one model: give one --model (or --fork alone)")
    connections = Connections(settings)
    store = connections.store()
    if request.save_as is not None:
        check_free(store, request.save_as)
    version = start_version(store, request.from_version, request.from_time)
    loaded = store.load(version, force=settings.force)
    span = _range(connections, settings, store, loaded, request.until)
    live_restored = restored_from(loaded, settings, loaded.meta.position())
    metrics = tuple(t.name for t in live_restored.scorecard.evaluation.tracked)
    task = live_restored.step.task
    live = Contender(live_restored.step, live_restored.join, Evaluation(task, metrics))
    entries = [_entry(spec, loaded, settings, metrics, request.fork, task)
               for spec in (request.specs or (loaded.meta.model_spec,))]
    consumer = connections.consumer(_topics(settings), group=f"{settings.consumer_group}.backtest",
                                    on_assign=lambda tps: {tp: span.start[tp] for tp in tps})
    consumer.start(join_group=False)
    retained = RetainedInput(consumer, settings.max_event_bytes, span, settings.input_topic, settings.labels_topic,
                             live_restored.marks, store.late.load() if settings.labels_topic else {})
    total = sum(count for (topic, _), count in span.events.items() if topic == settings.input_topic)
    started = time.monotonic()
    try:
        events = _replay(retained, live, entries, total)
    finally:
        consumer.close()
    report: dict[str, Any] = {"name": settings.name, "from_version": version, "until": request.until, "events": events,
                              "invalid": retained.invalid, "seconds": round(time.monotonic() - started, 3),
                              "live": {"spec": loaded.meta.model_spec, "metrics": live.evaluation.values()},
                              "models": [_model_report(entry, events) for entry in entries]}
    if request.save_as is not None:
        saving = SaveAs(request.save_as, loaded.meta.model_spec if request.fork else request.specs[0], version,
                        request.fork)
        comparison = {"from_version": version, "until": request.until, "events": events, **report["models"][0]}
        connections.admin().ensure({TopicNames(settings.name).scores: 1})  # as a challenger's gateway does first
        saved = save_challenger(store, settings, saving, entries[0].contender, span.stop, retained.merge.marks(),
                                comparison)
        report["saved"] = {"challenger": saving.challenger, "version": saved}
    if request.as_json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        _print_table(report)
    return 0


def _topics(settings: Settings) -> list[str]:
    return [settings.input_topic, *([settings.labels_topic] if settings.labels_topic else [])]


def _range(connections: Connections, settings: Settings, store: SnapshotStore, loaded: LoadedSnapshot,
           until: str) -> Range:
    admin = connections.admin()
    counts = admin.require(_topics(settings))
    probe = connections.consumer(_topics(settings), group=f"{settings.consumer_group}.backtest")
    partitions = [(topic, p) for topic in _topics(settings) for p in range(counts[topic])]
    try:
        firsts = {tp: probe.bounds(*tp)[0] for tp in partitions}
        bounds = {tp: (firsts[tp], end) for tp, end in probe.true_ends(partitions).items()}
    finally:
        probe.close()
    stop = None
    if until == "head":
        head = store.head()
        stop = store.meta(head).position() if head is not None else loaded.meta.position()
    return Range.between(bounds, loaded.meta.position(), stop, f"version {loaded.meta.version}")


def _entry(spec: str, loaded: LoadedSnapshot, settings: Settings, metrics: tuple[str, ...], fork: bool,
           task: Task) -> _Entry:
    """One replayed model, scored with the live model's task and metrics so that the columns compare."""
    if fork:  # the start version's own model (and the features it still waits for); no other spec can be forked
        if spec != loaded.meta.model_spec:
            raise UsageError(f"--fork replays version {loaded.meta.version}'s own model ({loaded.meta.model_spec}); "
                             f"give --fork without --model, or --model {spec} without --fork")
        restored = restored_from(loaded, settings)
        step, join = copy.deepcopy(restored.step), copy.deepcopy(restored.join)
        spec = f"fork of v{loaded.meta.version}"
    else:
        step, join = LearningStep(build_model(spec)), new_join(settings)
    if not comparable(step.task, task):
        raise UsageError(f"{spec!r} is a {step.task} model and the live one a {task} model: they cannot be compared")
    metrics_for(kind_of(step.model), metrics)  # a clear line when this model cannot be scored so
    return _Entry(spec, Contender(step, join, Evaluation(task, metrics)), Pairing(task, metrics))


def _replay(retained: RetainedInput, live: Contender, entries: list[_Entry], total: int) -> int:
    """Step every batch through the live model and each entry; the input events replayed."""
    events = 0
    with _Progress(total) as advance:
        for intake in retained.batches(BATCH):
            batch = _batch(intake, retained.labels_topic is not None)
            champion = live.step(batch)
            for entry in entries:
                began = time.perf_counter()
                scored = entry.contender.step(batch)
                entry.seconds += time.perf_counter() - began
                entry.pairing.add(champion, scored)
            done = len(intake.features)
            events += done
            advance(done)
    return events


def _batch(intake: Intake, merged: bool) -> Batch:
    items = orjson.loads(intake.payload())
    if merged:
        return Batch(items)
    return Batch(items, [(message.partition(), message.offset()) for message, _, _ in intake.kept])


class _Progress:
    """A progress bar on a terminal (events, events/s, time left), nothing otherwise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._bar: Any = None

    def __enter__(self) -> Any:
        if not sys.stderr.isatty():
            return lambda _n: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

        self._bar = Progress(TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                             TextColumn("{task.fields[rate]}"),
                             TimeRemainingColumn(), console=Console(stderr=True), transient=True)
        self._bar.start()
        task = self._bar.add_task("replay", total=self.total, rate="")
        started = time.monotonic()
        done = [0]

        def advance(n: int) -> None:
            done[0] += n
            rate = done[0] / max(time.monotonic() - started, 1e-9)
            self._bar.update(task, advance=n, rate=f"{rate:,.0f} events/s")

        return advance

    def __exit__(self, *_: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def _model_report(entry: _Entry, events: int) -> dict[str, Any]:
    report = entry.pairing.report()
    return {"spec": entry.spec, **report, "all": entry.contender.evaluation.values(),
            "events_per_second": round(events / entry.seconds) if entry.seconds else None}


def _print_table(report: dict[str, Any]) -> None:
    """One row per model and metric; the difference is the model's mean per-event loss minus the live model's."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 132)
    console.print(f"backtest of {report['name']!r} from version {report['from_version']} to {report['until']}: "
                  f"{report['events']:,} events in {report['seconds']:.1f}s"
                  + (f", {report['invalid']} invalid messages skipped" if report["invalid"] else ""))
    table = Table("model", "paired", "metric", "model", "live", "loss difference", "95% interval", "verdict",
                  "events/s", box=box.SIMPLE_HEAD)
    for model in report["models"]:
        difference = model["difference"]
        for i, (name, windows) in enumerate(model["metrics"].items()):
            first = i == 0
            cells = [model["spec"], f"{model['paired_events']:,}"] if first else ["", ""]
            tail = ["", "", "", ""]
            speed = f"{model['events_per_second']:,}" if model["events_per_second"] else NONE
            if first:
                tail = [*shown(difference), speed]
            paired = model["paired_events"] > 0
            table.add_row(*cells, name, f"{windows['all']:.4f}" if paired else NONE,
                          f"{model['champion'][name]['all']:.4f}" if paired else NONE, *tail)
    console.print(table)
    if saved := report.get("saved"):
        console.print(f"saved as challenger {saved['challenger']!r} (its version {saved['version']}): run it on with "
                      f"`learner run --role challenger --name {report['name']} --challenger {saved['challenger']}`")
