"""The engine's timing: production's values, pinned here; the environment variable (tests
only) that changes them, read as a JSON object of changes and refused whole when it does not
read."""

from __future__ import annotations

from dataclasses import replace

import pytest

from procore_hotfolder.engine.timing import TIMING_VARIABLE, Timing
from procore_hotfolder.errors import ConfigError
from procore_hotfolder.model import Backoff, Spacing
from procore_hotfolder.procore.retry import RetryPolicy


def test_production_values() -> None:
    """What the daemon waits in production; a change here is a change of behaviour."""
    timing = Timing()
    assert timing.requests == RetryPolicy(tries=5, base=0.5, cap=30.0, jitter=0.25)
    assert timing.file_backoff == Backoff(base=2.0, cap=300.0, jitter=0.2)
    assert timing.outage_spacing == Spacing(least=2.0, spread=3.0)
    assert timing.pause_checks == Backoff(base=20.0, cap=900.0, jitter=0.2)
    assert timing.stall_seconds == 1800.0
    assert timing.scan_window == 5000
    assert timing.progress_every == 5.0
    assert timing.snapshot_every == 2.0


def test_the_outage_spacing_is_two_to_five_seconds() -> None:
    spacing = Timing().outage_spacing
    assert [spacing.delay(rand=r) for r in (0.0, 0.5, 0.999)] == [2.0, 3.5, 4.997]


@pytest.mark.parametrize("environ", [{}, {TIMING_VARIABLE: ""}, {TIMING_VARIABLE: " {} "}])
def test_without_changes_production(environ: dict[str, str]) -> None:
    assert Timing.from_environment(environ) == Timing()


def test_the_variable_changes_what_it_names() -> None:
    changes = '{"requests": {"base": 0.05}, "stall_seconds": 2, "scan_window": 10}'
    timing = Timing.from_environment({TIMING_VARIABLE: changes})
    assert timing == replace(Timing(), requests=replace(RetryPolicy(), base=0.05),
                             stall_seconds=2.0, scan_window=10)
    assert isinstance(timing.stall_seconds, float)  # a whole number given for seconds


def test_every_value_travels_through_the_variable() -> None:
    timing = Timing(requests=RetryPolicy(tries=2, base=0.1, cap=1.0, jitter=0.0),
                    file_backoff=Backoff(base=0.3, cap=3.0, jitter=0.1),
                    outage_spacing=Spacing(least=0.2, spread=0.4),
                    pause_checks=Backoff(base=0.5, cap=5.0, jitter=0.0), stall_seconds=3.0,
                    scan_window=7, progress_every=0.25, snapshot_every=0.125)
    assert Timing.from_environment({TIMING_VARIABLE: timing.to_json()}) == timing


@pytest.mark.parametrize(("text", "problem"), [
    ("fast", "Expecting value"),
    ("[1]", "the value: expected an object"),
    ('{"stall": 2}', "unknown stall"),
    ('{"requests": {"retries": 2}}', "unknown requests.retries"),
    ('{"requests": 3}', "requests: expected an object"),
    ('{"requests": {"tries": 0}}', "tries must be at least 1"),
    ('{"scan_window": 2.5}', "scan_window: expected a whole number"),
    ('{"stall_seconds": "2"}', "stall_seconds: expected a number"),
    ('{"stall_seconds": true}', "stall_seconds: expected a number"),
])
def test_a_variable_that_does_not_read_is_refused(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Timing.from_environment({TIMING_VARIABLE: text})
    (said,) = refused.value.problems
    assert said.startswith(f"{TIMING_VARIABLE}: ") and problem in said, said
