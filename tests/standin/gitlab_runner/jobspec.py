"""The job payload GitLab sends from ``POST /api/v4/jobs/request`` (common/spec/spec.go
``Job`` and friends) and job variables (common/spec/variables.go)."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Variable:
    """common/spec/spec.go ``Variable`` (``Internal`` is runner-side only)."""

    key: str
    value: str
    public: bool = True
    internal: bool = False
    file: bool = False
    masked: bool = False
    raw: bool = False

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Variable:
        """Parse one entry of ``variables``."""
        return cls(
            key=str(raw.get("key", "")),
            value=str(raw.get("value", "")),
            public=bool(raw.get("public", False)),
            file=bool(raw.get("file", False)),
            masked=bool(raw.get("masked", False)),
            raw=bool(raw.get("raw", False)),
        )


_SPECIAL = set("*#$@!?-0123456789")


class Variables(list[Variable]):
    """Ordered variables; later definitions win (``Variables.value``)."""

    def __init__(self, items: list[Variable] | None = None, tmp_dir: str = "") -> None:
        super().__init__(items or [])
        self.tmp_dir = tmp_dir

    def get(self, key: str, pathnames: bool = True) -> str:
        """``Get``: the last value; file variables give their path under the tmp dir."""
        if key == "$":
            return "$"
        if key in _SPECIAL:
            return ""
        for variable in reversed(self):
            if variable.key == key:
                if variable.file and pathnames:
                    return f"{self.tmp_dir}/{variable.key}"
                return variable.value
        return ""

    def value(self, key: str) -> str:
        """``Value``: like :meth:`get` without file paths."""
        return self.get(key, pathnames=False)

    def bool(self, key: str) -> bool:
        """``Bool``: strconv.ParseBool, or an integer equal to 1."""
        raw = self.get(key).lower()
        if raw in ("1", "t", "true"):
            return True
        if raw in ("0", "f", "false", ""):
            return False
        try:
            return int(raw) == 1
        except ValueError:
            return False

    def expand_value(self, value: str) -> str:
        """``ExpandValue``: Go's ``os.Expand`` with :meth:`get`."""
        out: list[str] = []
        i = 0
        while i < len(value):
            char = value[i]
            if char != "$" or i + 1 >= len(value):
                out.append(char)
                i += 1
                continue
            rest = value[i + 1 :]
            if rest[0] == "{":
                end = rest.find("}")
                if end <= 1:
                    i += 2 if end == -1 else 3
                    continue
                name, consumed = rest[1:end], end + 1
            elif rest[0] in _SPECIAL:
                name, consumed = rest[0], 1
            else:
                match = re.match(r"[A-Za-z0-9_]+", rest)
                if match is None:
                    out.append("$")
                    i += 1
                    continue
                name, consumed = match.group(0), len(match.group(0))
            out.append(self.get(name))
            i += 1 + consumed
        return "".join(out)

    def expand(self) -> Variables:
        """``Expand``: every non-raw value expanded against the whole list."""
        expanded = [
            Variable(**{**v.__dict__, "value": v.value if v.raw else self.expand_value(v.value)})
            for v in self
        ]
        return Variables(expanded, self.tmp_dir)

    def masked(self) -> list[str]:
        """Values of masked variables (the trace masks them)."""
        return [v.value for v in self if v.masked and v.value]


@dataclass
class Image:
    """common/spec/spec.go ``Image`` (job image or one service)."""

    name: str = ""
    alias: str = ""
    command: list[str] = field(default_factory=list)
    entrypoint: list[str] = field(default_factory=list)
    variables: list[Variable] = field(default_factory=list)
    pull_policy: list[str] = field(default_factory=list)
    docker_user: str = ""

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> Image:
        """Parse ``image`` or one of ``services``."""
        raw = raw or {}
        docker = ((raw.get("executor_opts") or {}).get("docker")) or {}
        return cls(
            name=str(raw.get("name", "")),
            alias=str(raw.get("alias", "") or ""),
            command=[str(c) for c in raw.get("command") or []],
            entrypoint=[str(c) for c in raw.get("entrypoint") or []],
            variables=[Variable.from_dict(v) for v in raw.get("variables") or []],
            pull_policy=[str(p) for p in raw.get("pull_policy") or []],
            docker_user=str(docker.get("user", "") or ""),
        )

    def aliases(self) -> list[str]:
        """``Image.Aliases``: ``alias`` split on commas and spaces."""
        return self.alias.replace(",", " ").split()


@dataclass
class Step:
    """common/spec/spec.go ``Step``: ``script`` or ``after_script`` (or ``release``...)."""

    name: str
    script: list[str]
    timeout: int = 0
    when: str = "on_success"
    allow_failure: bool = False


@dataclass
class Cache:
    """common/spec/spec.go ``Cache``."""

    key: str = ""
    untracked: bool = False
    policy: str = "pull-push"
    paths: list[str] = field(default_factory=list)
    when: str = "on_success"
    fallback_keys: list[str] = field(default_factory=list)

    def should_cache(self, on_success: bool) -> bool:
        """``CacheWhen.ShouldCache``."""
        if self.when == "always":
            return True
        if self.when == "on_failure":
            return not on_success
        return on_success


@dataclass
class Job:
    """common/spec/spec.go ``Job``: what the stand-in reads from a job payload."""

    raw: dict[str, Any]
    id: int
    token: str
    allow_git_fetch: bool = False
    name: str = ""
    stage: str = ""
    project_id: int = 0
    project_name: str = ""
    repo_url: str = ""
    ref: str = ""
    sha: str = ""
    before_sha: str = ""
    refspecs: list[str] = field(default_factory=list)
    depth: int = 0
    protected: bool | None = None
    timeout: int = 0
    variables: list[Variable] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    image: Image = field(default_factory=Image)
    services: list[Image] = field(default_factory=list)
    cache: list[Cache] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    dependencies: list[dict[str, Any]] = field(default_factory=list)
    trace_sections: bool = False
    failure_reasons: list[str] = field(default_factory=list)
    token_mask_prefixes: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Job:
        """Parse the payload of a 201 answer to ``jobs/request``."""
        info = raw.get("job_info") or {}
        git = raw.get("git_info") or {}
        features = raw.get("features") or {}
        steps = [
            Step(
                name=str(s.get("name", "")),
                script=[str(line) for line in s.get("script") or []],
                timeout=int(s.get("timeout") or 0),
                when=str(s.get("when") or "on_success"),
                allow_failure=bool(s.get("allow_failure", False)),
            )
            for s in raw.get("steps") or []
        ]
        caches = [
            Cache(
                key=str(c.get("key", "") or ""),
                untracked=bool(c.get("untracked", False)),
                policy=str(c.get("policy") or "pull-push"),
                paths=[str(p) for p in c.get("paths") or []],
                when=str(c.get("when") or "on_success"),
                fallback_keys=[str(k) for k in c.get("fallback_keys") or []],
            )
            for c in raw.get("cache") or []
        ]
        return cls(
            raw=raw,
            id=int(raw["id"]),
            token=str(raw.get("token", "")),
            allow_git_fetch=bool(raw.get("allow_git_fetch", False)),
            name=str(info.get("name", "")),
            stage=str(info.get("stage", "")),
            project_id=int(info.get("project_id", 0) or 0),
            project_name=str(info.get("project_name", "")),
            repo_url=str(git.get("repo_url", "")),
            ref=str(git.get("ref", "")),
            sha=str(git.get("sha", "")),
            before_sha=str(git.get("before_sha", "")),
            refspecs=[str(r) for r in git.get("refspecs") or []],
            depth=int(git.get("depth", 0) or 0),
            protected=git.get("protected"),
            timeout=int((raw.get("runner_info") or {}).get("timeout", 0) or 0),
            variables=[Variable.from_dict(v) for v in raw.get("variables") or []],
            steps=steps,
            image=Image.from_dict(raw.get("image")),
            services=[Image.from_dict(s) for s in raw.get("services") or []],
            cache=caches,
            artifacts=list(raw.get("artifacts") or []),
            dependencies=list(raw.get("dependencies") or []),
            trace_sections=bool(features.get("trace_sections", False)),
            failure_reasons=[str(r) for r in features.get("failure_reasons") or []],
            token_mask_prefixes=[str(p) for p in features.get("token_mask_prefixes") or []],
        )

    def repo_clean_url(self) -> str:
        """``RepoCleanURL``: the repository URL without credentials."""
        parts = urllib.parse.urlsplit(self.repo_url)
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    def job_url(self) -> str:
        """``JobURL``: ``<project URL>/-/jobs/<id>``."""
        return f"{self.repo_clean_url().removesuffix('.git')}/-/jobs/{self.id}"
