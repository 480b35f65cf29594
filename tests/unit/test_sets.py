"""The engine-suite coordinator: which test goes to which set, what a set reports."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.harness import gitlab, sets


@pytest.mark.parametrize(
    ("params", "expected"),
    [({"outer": "rootful"}, "rootful"), ({"outer": "rootless", "unit": "x"}, "rootless"),
     ({}, "none"), ({"skopeo": True}, "none")],
)  # fmt: skip
def test_a_test_goes_to_its_outer_modes_set(params: dict[str, object], expected: str) -> None:
    """Tests parametrized by the outer fixture go to that mode's set, the rest to none."""
    assert sets.set_of(params) == expected


def test_wanted_set_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unknown set name is an error naming the choices; unset means every test."""
    monkeypatch.delenv(sets.SET_ENV, raising=False)
    assert sets.wanted_set() is None
    monkeypatch.setenv(sets.SET_ENV, "rootles")
    with pytest.raises(ValueError, match="rootful, rootless, none"):
        sets.wanted_set()


def test_summary_reads_the_junit_counts(tmp_path: Path) -> None:
    """A set's counts come from its JUnit XML; the wall time from its start and end."""
    xml = tmp_path / "engine-rootful.xml"
    xml.write_text(
        '<?xml version="1.0"?><testsuites><testsuite name="pytest" errors="1" failures="2" '
        'skipped="0" tests="40" time="600.0"></testsuite></testsuites>'
    )
    process = subprocess.Popen(["true"], text=True)
    process.wait()
    run = sets.SetRun("rootful", process, tmp_path / "x.log", xml, started=10.0, ended=250.5)
    assert run.summary() == {"tests": 40, "failures": 2, "errors": 1, "skipped": 0,
                             "seconds": 240.5}  # fmt: skip


def test_summary_without_xml_is_all_zero(tmp_path: Path) -> None:
    """A set that died before pytest wrote its XML reports zero tests (and its exit)."""
    process = subprocess.Popen(["false"], text=True)
    process.wait()
    run = sets.SetRun("none", process, tmp_path / "x.log", tmp_path / "none.xml", 0.0, 1.0)
    assert run.summary()["tests"] == 0


def test_unknown_sets_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    """``--sets`` with a name that is not a set: exit 2 and the choices."""
    assert sets.main(["--sets", "rootful,mixed"]) == 2
    assert "unknown set(s) mixed" in capsys.readouterr().out


def test_tokens_are_per_set() -> None:
    """A token a test starts a runner with differs between sets, and the fake GitLab
    is started with every one of them."""
    mine = {gitlab.token("second", s) for s in gitlab.SETS}
    assert len(mine) == len(gitlab.SETS) and mine <= set(gitlab.ALL_TOKENS)
    with pytest.raises(ValueError):
        gitlab.token("second", "mixed")
