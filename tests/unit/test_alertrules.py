"""The shipped monitoring files: ``examples/monitoring/pipglr-alerts.yml`` and
``prometheus.yml``.

``promtool`` (Debian's ``prometheus``) checks the rules and the scrape config and runs
``alertrules_test.yml``, where every alert has cases that fire and cases that must not.
Without promtool these tests skip, except under ``PIPGLR_REQUIRE_ENGINE=1`` (CI, whose
test host ``scripts/prepare-test-host.sh`` installs it), where they fail. The README's
"Monitoring" section shows both files; they are the one source and the README's copies
must equal them byte for byte.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from pipglr import layout

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "examples" / "monitoring"
RULES = MONITORING / "pipglr-alerts.yml"
SCRAPE = MONITORING / "prometheus.yml"
RULES_TEST = Path(__file__).with_name("alertrules_test.yml")
README = REPO / "README.md"
#: Every alert the README promises (issue 24), each with its own condition.
ALERTS = {
    "PipglrRunnerDown",
    "PipglrNestedApiDown",
    "PipglrStorageOverCap",
    "PipglrEvictorFailing",
    "PipglrEgressDropsRising",
    "PipglrCaExpiresSoon",
}


def promtool() -> str:
    """promtool's path; skipped without it, failed under PIPGLR_REQUIRE_ENGINE=1."""
    found = shutil.which("promtool")
    if found is None:
        reason = "promtool is not installed (apt-get install prometheus)"
        if os.environ.get("PIPGLR_REQUIRE_ENGINE", "") == "1":
            pytest.fail(f"promtool required but {reason}", pytrace=False)
        pytest.skip(reason)
    return found


def run_promtool(*args: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


def test_promtool_accepts_the_rules_and_the_scrape_config() -> None:
    checked = run_promtool("check", "rules", RULES)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in checked.stdout
    config = run_promtool("check", "config", SCRAPE)
    assert config.returncode == 0, config.stdout + config.stderr


def test_every_alert_fires_and_holds_back_as_its_cases_say() -> None:
    """``promtool test rules``: each alert's firing cases and its silent ones."""
    done = run_promtool("test", "rules", RULES_TEST.name, cwd=RULES_TEST.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def _alert_cases() -> dict[str, tuple[int, int]]:
    """Per alert: how many evaluations expect it firing, and how many expect silence."""
    cases: dict[str, tuple[int, int]] = {}
    for group in yaml.safe_load(RULES_TEST.read_text())["tests"]:
        for case in group["alert_rule_test"]:
            firing, silent = cases.get(case["alertname"], (0, 0))
            expected = case.get("exp_alerts") or []
            cases[case["alertname"]] = (firing + bool(expected), silent + (not expected))
    return cases


def test_the_rule_tests_cover_each_alert_both_ways() -> None:
    """A rule test with only firing cases would pass a rule that always fires."""
    rules = yaml.safe_load(RULES.read_text())["groups"]
    assert [group["name"] for group in rules] == ["pipglr"]
    assert {rule["alert"] for rule in rules[0]["rules"]} == ALERTS
    cases = _alert_cases()
    assert set(cases) == ALERTS
    for alert, (firing, silent) in cases.items():
        assert firing >= 1 and silent >= 1, f"{alert}: {firing} firing, {silent} silent cases"
    for rule in rules[0]["rules"]:
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]


@pytest.mark.parametrize(
    ("change", "alert"),
    [
        # Every `for:` gone: the pending cases must notice.
        ((r"(?m)^(\s+for:\s*)\S+$", r"\g<1>0s"), "PipglrRunnerDown"),
        # The storage match over all targets instead of per target.
        ((r"> on\(instance, job\)", "> on()"), "PipglrStorageOverCap"),
        # A threshold that counts one private packet a minute as rising.
        ((r"> 0\.05", "> 0.01"), "PipglrEgressDropsRising"),
    ],
)
def test_the_rule_tests_catch_a_weakened_rule(
    tmp_path: Path, change: tuple[str, str], alert: str
) -> None:
    """The same rule tests against a changed copy of the rules fail, naming the alert."""
    (tmp_path / "examples" / "monitoring").mkdir(parents=True)
    (tmp_path / "tests" / "unit").mkdir(parents=True)
    changed = re.sub(change[0], change[1], RULES.read_text())
    assert changed != RULES.read_text()
    (tmp_path / "examples" / "monitoring" / RULES.name).write_text(changed)
    shutil.copy(RULES_TEST, tmp_path / "tests" / "unit" / RULES_TEST.name)
    done = run_promtool("test", "rules", RULES_TEST.name, cwd=tmp_path / "tests" / "unit")
    assert done.returncode != 0 and alert in done.stdout + done.stderr, done.stdout


def test_the_scrape_config_reads_both_paths_of_one_port() -> None:
    """Two jobs on the published port: pipglr's facts and the runner's relayed metrics;
    the rules file is the one shipped beside it."""
    config = yaml.safe_load(SCRAPE.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {name: job["metrics_path"] for name, job in jobs.items()} == {
        "pipglr": "/metrics",
        "gitlab-runner": "/runner/metrics",
    }
    target = f"127.0.0.1:{layout.METRICS_PORT}"
    for job in jobs.values():
        assert job["static_configs"] == [{"targets": [target]}]
    assert config["rule_files"] == [RULES.name]


def _monitoring_section() -> str:
    text = README.read_text()
    start = text.index("\n## Monitoring\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


@pytest.mark.parametrize("path", [SCRAPE, RULES], ids=lambda p: p.name)
def test_the_readme_shows_the_file_byte_for_byte(path: Path) -> None:
    """The README's copy follows a marker naming the file, fenced as yaml."""
    section = _monitoring_section()
    name = path.relative_to(REPO).as_posix()
    marker = f"<!-- file: {name} -->\n"
    assert section.count(marker) == 1, f"README Monitoring: one {marker.strip()} before its copy"
    shown = section.split(marker, 1)[1]
    assert shown.startswith("```yaml\n"), "the copy is a yaml fenced block right after"
    body = shown.removeprefix("```yaml\n").split("\n```\n", 1)[0] + "\n"
    assert body == path.read_text(), f"README's copy of {name} differs: paste the file again"
