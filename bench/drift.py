"""False alarms and detection delays of the service's drift detectors (``learner.core.drift``).

    python bench/drift.py [--events 20000] [--change-at 5000] [--seeds 5] [--jobs 2]

Stationary streams (River generators, 5 seeds, 20,000 events each, predict then learn): every
alarm is a false one. Abrupt drifts at event 5,000 (``--change-at``; a young model, where a long
warm-up would see nothing): the delay is the number of events from the change to the first alarm
after it (a miss: none before the end). The classifiers are the ``binary`` and ``tree`` presets. Input drift: features
from the same generators, with and without a shift in one feature at the middle. Prints one table
per kind, in the format of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import itertools
import numbers
import random
import statistics
import sys
from collections.abc import Callable, Iterator
from multiprocessing import Pool
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from river import compose, tree
from river.datasets import synth

from learner.core.drift import InputDrift, PerformanceDrift
from learner.core.models import build_model

Stream = Callable[[int], Iterator[tuple[dict[str, Any], Any]]]


def _switch(before: Stream, after: Stream, at: int) -> Stream:
    def stream(seed: int) -> Iterator[tuple[dict[str, Any], Any]]:
        yield from itertools.islice(before(seed), at)
        yield from after(seed + 1000)
    return stream


def _flip(stream: Stream) -> Stream:
    def flipped(seed: int) -> Iterator[tuple[dict[str, Any], Any]]:
        for x, y in stream(seed):
            yield x, -y
    return flipped


def _noisier(stream: Stream, sd: float) -> Stream:
    def noisy(seed: int) -> Iterator[tuple[dict[str, Any], Any]]:
        rng = random.Random(seed)
        for x, y in stream(seed):
            yield x, y + rng.gauss(0, sd)
    return noisy


CLASSIFIERS = {"binary": lambda: build_model("binary"), "tree": lambda: build_model("tree")}
REGRESSORS = {"linear": lambda: build_model("regression"),
              "tree": lambda: compose.SelectType(numbers.Number) | tree.HoeffdingTreeRegressor()}

STATIONARY: dict[str, tuple[str, Stream]] = {
    "Agrawal(0)": ("binary", lambda s: iter(synth.Agrawal(classification_function=0, seed=s))),
    "SEA(0)": ("binary", lambda s: iter(synth.SEA(variant=0, seed=s))),
    "Hyperplane": ("binary", lambda s: iter(synth.Hyperplane(seed=s, n_features=10, mag_change=0.0, noise_percentage=0.05))),
    "Friedman": ("regression", lambda s: iter(synth.Friedman(seed=s))),
    "Planes2D": ("regression", lambda s: iter(synth.Planes2D(seed=s))),
    "Mv": ("regression", lambda s: iter(synth.Mv(seed=s))),
}


def drifts(half: int) -> dict[str, tuple[str, Stream]]:
    friedman = STATIONARY["Friedman"][1]
    return {
        "Agrawal 0 -> 2": ("binary", _switch(STATIONARY["Agrawal(0)"][1],
                                             lambda s: iter(synth.Agrawal(classification_function=2, seed=s)), half)),
        "SEA 0 -> 3": ("binary", _switch(STATIONARY["SEA(0)"][1], lambda s: iter(synth.SEA(variant=3, seed=s)), half)),
        "Friedman, target sign flipped": ("regression", _switch(friedman, _flip(friedman), half)),
        "Friedman, noise x3": ("regression", _switch(friedman, _noisier(friedman, 2.0), half)),
    }


def _performance_job(job: tuple[str, str, str, int, int, bool, int]) -> tuple[str, str, list[int]]:
    name, task, model_name, seed, events, drifting, half = job
    stream = (drifts(half) if drifting else STATIONARY)[name][1]
    model = (CLASSIFIERS if task == "binary" else REGRESSORS)[model_name]()
    detector, alarms = PerformanceDrift(task), []
    for i, (x, y) in enumerate(itertools.islice(stream(seed), events)):
        prediction = model.predict_one(x)
        model.learn_one(x, y)
        if detector.update(y, prediction):
            alarms.append(i)
    return name, model_name, alarms


def _shifted(stream: Stream, feature: str, by: float, at: int) -> Stream:
    def shifted(seed: int) -> Iterator[tuple[dict[str, Any], Any]]:
        for i, (x, y) in enumerate(stream(seed)):
            yield ({**x, feature: x[feature] + by} if i >= at else x), y
    return shifted


def _categories(seed: int, moved_at: int | None = None) -> Iterator[tuple[dict[str, Any], Any]]:
    rng = random.Random(seed)
    levels = [f"c{i}" for i in range(10)]
    for i in itertools.count():
        weights = [2.0 if (moved_at is not None and i >= moved_at and k < 3) else 1.0 for k in range(10)]
        yield {"city": rng.choices(levels, weights)[0], "amount": rng.gauss(0, 1)}, 0


def _input_job(job: tuple[str, int, int, int]) -> tuple[str, list[int]]:
    name, seed, events, half = job
    streams: dict[str, Stream] = {
        **{n: s for n, (_, s) in STATIONARY.items()},
        "categorical, 10 levels": _categories,
        "Friedman, x0 + 0.5 sd": _shifted(STATIONARY["Friedman"][1], 0, 0.15, half),
        "categorical, 3 of 10 levels twice as frequent": lambda s: _categories(s, half),
    }
    detector, alarms = InputDrift(), []
    for i, (x, _) in enumerate(itertools.islice(streams[name](seed), events)):
        if detector.update(x):
            alarms.append(i)
    return name, alarms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--change-at", type=int, default=5_000, help="the event the drifting streams change at")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    half, seeds = args.change_at, range(args.seeds)

    jobs = [(name, task, model, seed, args.events, False, half) for name, (task, _) in STATIONARY.items()
            for model in (CLASSIFIERS if task == "binary" else REGRESSORS) for seed in seeds]
    jobs += [(name, task, model, seed, args.events, True, half) for name, (task, _) in drifts(half).items()
             for model in (CLASSIFIERS if task == "binary" else REGRESSORS) for seed in seeds]
    inputs = [(name, seed, args.events, half) for name in (*STATIONARY, "categorical, 10 levels",
                                                          "Friedman, x0 + 0.5 sd",
                                                          "categorical, 3 of 10 levels twice as frequent")
              for seed in seeds]
    with Pool(args.jobs) as pool:
        performance = pool.map(_performance_job, jobs)
        observed = pool.map(_input_job, inputs)

    print(f"\n### Performance drift, stationary streams ({args.events:,} events, {args.seeds} seeds): false alarms per seed\n")
    print("| stream | model | false alarms per seed |\n| --- | --- | --- |")
    for (name, model), runs in _grouped(performance, STATIONARY).items():
        print(f"| {name} | {model} | {' '.join(str(len(a)) for a in runs)} |")
    print(f"\n### Performance drift, abrupt change at event {half:,}: delay (events) per seed, x = missed\n")
    print("| drift | model | delays | mean delay | false alarms before |\n| --- | --- | --- | --- | --- |")
    for (name, model), runs in _grouped(performance, drifts(half)).items():
        delays = [next((i - half for i in a if i >= half), None) for a in runs]
        found = [d for d in delays if d is not None]
        mean = f"{statistics.mean(found):,.0f}" if found else "-"
        early = sum(1 for a in runs for i in a if i < half)
        print(f"| {name} | {model} | {' '.join('x' if d is None else str(d) for d in delays)} | {mean} | {early} |")
    print(f"\n### Input drift (window 5000, one event in 5 sampled): alarms per seed (shifts at event {half:,})\n")
    print("| stream | alarms per seed | first alarm after the shift |\n| --- | --- | --- |")
    by_name: dict[str, list[list[int]]] = {}
    for name, alarms in observed:
        by_name.setdefault(name, []).append(alarms)
    for name, runs in by_name.items():
        delays = [next((i - half for i in a if i >= half), None) for a in runs] if "x0" in name or "twice" in name else []
        shown = " ".join("x" if d is None else str(d) for d in delays) if delays else "-"
        print(f"| {name} | {' '.join(str(len(a)) for a in runs)} | {shown} |")


def _grouped(results: list[tuple[str, str, list[int]]], names: dict[str, Any]) -> dict[tuple[str, str], list[list[int]]]:
    grouped: dict[tuple[str, str], list[list[int]]] = {}
    for name, model, alarms in results:
        if name in names:
            grouped.setdefault((name, model), []).append(alarms)
    return grouped


if __name__ == "__main__":
    main()
