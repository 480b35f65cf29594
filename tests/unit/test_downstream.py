"""Downstream pipeline triggers: the request built for GitLab's trigger API."""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from invoke.config import Config
from invoke.context import MockContext

import tasks
from pipglr.errors import UsageError
from pipglr.release import downstream
from pipglr.release.downstream import Downstream

API = "https://gitlab.example.com/api/v4"
ENTRY = Downstream("group/image on pipglr", "DOWN_TOKEN", "stable", {"WHY": "pipglr"})


def test_request_url_and_form_fields() -> None:
    """POST /projects/:id/trigger/pipeline with token, ref and variables[...] fields;
    the path-form project id is URL-encoded whole."""
    request = downstream.trigger_request(
        API + "/", ENTRY, "glptt-secret", {"PIPGLR_IMAGE": "r/p:1"}
    )
    assert request.url == f"{API}/projects/group%2Fimage%20on%20pipglr/trigger/pipeline"
    form = urllib.parse.parse_qs(request.body().decode())
    assert form == {"token": ["glptt-secret"], "ref": ["stable"],
                    "variables[PIPGLR_IMAGE]": ["r/p:1"], "variables[WHY]": ["pipglr"]}  # fmt: skip


def test_token_is_never_shown() -> None:
    """Neither the printable line nor the repr holds the token."""
    request = downstream.trigger_request(API, ENTRY, "glptt-secret", {})
    assert "glptt-secret" not in request.describe() and "glptt-secret" not in repr(request)
    assert "token=***" in request.describe()


def test_missing_token_names_the_variable() -> None:
    """An unset token variable is a one-line error saying which variable to set."""
    with pytest.raises(UsageError, match="set the CI variable DOWN_TOKEN"):
        downstream.requests_for([ENTRY], API, {}, environ={})


def test_load_reads_the_toml_list(tmp_path: Path) -> None:
    """[[downstream]] entries become Downstream objects; a bad key is a usage error."""
    path = tmp_path / "d.toml"
    path.write_text('[[downstream]]\nproject = "42"\ntoken_variable = "T"\n')
    assert downstream.load(path) == [Downstream("42", "T")]
    path.write_text('[[downstream]]\nproject = "42"\ntoken = "oops"\n')
    with pytest.raises(UsageError, match="not a list of"):
        downstream.load(path)


def test_send_posts_the_body_and_returns_the_pipeline() -> None:
    """send() POSTs the form body (the network call itself is replaced here)."""
    seen: dict[str, Any] = {}

    class Answer:
        def __enter__(self) -> Answer:
            return self

        def __exit__(self, *exc: object) -> None:
            return None

        def read(self) -> bytes:
            return b'{"id": 7, "web_url": "https://gitlab.example.com/p/-/pipelines/7"}'

    def opener(request: Any, timeout: float) -> Answer:
        seen.update(method=request.get_method(), url=request.full_url, data=request.data)
        return Answer()

    request = downstream.trigger_request(API, ENTRY, "t", {})
    assert downstream.send(request, opener).endswith("/pipelines/7")
    assert seen["method"] == "POST" and seen["data"] == request.body()


def test_task_dry_run_prints_requests_and_sends_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`invoke trigger-downstream --dry-run` lists each request with PIPGLR_IMAGE."""
    path = tmp_path / "d.toml"
    path.write_text('[[downstream]]\nproject = "42"\ntoken_variable = "T"\n')
    monkeypatch.setenv("T", "secret")
    monkeypatch.setattr(downstream, "send", lambda r: pytest.fail("dry run sent a request"))
    context = MockContext(config=Config(overrides={"pipglr": tasks.ns.configuration()["pipglr"]}))
    tasks.trigger_downstream(context, "r/p:latest", projects=str(path), api_url=API, dry_run=True)
    out = capsys.readouterr().out
    assert f"POST {API}/projects/42/trigger/pipeline (ref=main, " in out
    assert "variables[PIPGLR_IMAGE]=r/p:latest" in out and "secret" not in out


def test_shipped_list_is_valid_and_empty() -> None:
    """ci/downstream.toml parses; it lists no project until one is added."""
    assert downstream.load(tasks.REPO / "ci/downstream.toml") == []
