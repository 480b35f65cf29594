"""What a job derives from runner config + payload: names, directories, variables,
feature flags and settings (common/build.go, common/build_settings.go,
helpers/shorten_token.go, helpers/dns/utils.go)."""

from __future__ import annotations

import hashlib
import platform
import re
import socket
import urllib.parse
from dataclasses import dataclass, field

from . import NAME, REVISION, VERSION, tlsca
from .config import RunnerConfig
from .executoropts import ExecutorOptions
from .jobspec import Job, Variable, Variables

#: helpers/featureflags/flags.go defaults of the flags the stand-in honours, in the
#: order of ``flags`` there (``GetAll``: the header's "feature flags:" list).
FEATURE_FLAGS = {
    "FF_NETWORK_PER_BUILD": False,
    "FF_USE_DIRECT_DOWNLOAD": True,
    "FF_SKIP_NOOP_BUILD_STAGES": True,
    "FF_DISABLE_UMASK_FOR_DOCKER_EXECUTOR": False,
    "FF_ENABLE_BASH_EXIT_CODE_CHECK": False,
    "FF_USE_LEGACY_BASH_EVAL": False,
    "FF_SCRIPT_SECTIONS": False,
    "FF_ENABLE_JOB_CLEANUP": False,
    "FF_USE_INIT_WITH_DOCKER_EXECUTOR": False,
    "FF_TIMESTAMPS": True,
    "FF_DISABLE_AUTOMATIC_TOKEN_ROTATION": False,
    "FF_MASK_ALL_DEFAULT_TOKENS": True,
    "FF_HASH_CACHE_KEYS": False,
}
#: common/consts.go
DEFAULT_TIMEOUT = 7200
_TOKEN_PREFIXES = re.compile(r"^glrt-(t[123]_)?|^t[123]_|^glrtr-|^glcbt-|^GR[0-9A-Fa-f]{7}")


#: Go's ``strconv.ParseBool``: exactly these spellings, anything else is an error.
_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def parse_bool(raw: str) -> bool | None:
    """``strconv.ParseBool``; None where Go returns an error."""
    return True if raw in _GO_TRUE else False if raw in _GO_FALSE else None


def short_token(token: str) -> str:
    """helpers/shorten_token.go ``ShortenToken``: known prefixes stripped, 9 chars."""
    return _TOKEN_PREFIXES.sub("", token, count=1)[:9]


def rfc1123(name: str) -> str:
    """helpers/dns/utils.go ``MakeRFC1123Compatible``."""
    name = re.sub(r"[^-a-z0-9]", "", name.lower())
    return re.sub(r"^[^a-z0-9]+", "", name)[:63]


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String`` for whole seconds (``1h0m0s``, ``2m30s``, ``5s``)."""
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


@dataclass
class BuildInfo:
    """common/build.go ``Build`` fields the executor and the shell read."""

    runner: RunnerConfig
    job: Job
    system_id: str
    runner_id: int = 0
    project_runner_id: int = 0
    hostname: str = field(default_factory=socket.gethostname)
    job_status: str = "running"
    #: the executor's directories/shell/hostname decisions (docker's by default)
    options: ExecutorOptions = field(default_factory=ExecutorOptions)

    # --- names (common/build.go) -------------------------------------------------
    @property
    def short_token(self) -> str:
        """``RunnerCredentials.ShortDescription``."""
        return short_token(self.runner.token)

    def project_unique_name(self) -> str:
        """``ProjectUniqueName``: ``runner-<short>-project-<id>-concurrent-<n>``."""
        return rfc1123(
            f"runner-{self.short_token}-project-{self.job.project_id}"
            f"-concurrent-{self.project_runner_id}"
        )

    def project_unique_short_name(self) -> str:
        """``ProjectUniqueShortName``: the per-build network's name."""
        return rfc1123(
            f"runner-{self.short_token}-{self.job.project_id}-{self.project_runner_id}-{self.job.id}"
        )

    def project_real_unique_name(self) -> str:
        """``ProjectRealUniqueName``: ``runner-`` + 32 hex of sha256(token-systemid-...)."""
        data = (
            f"{self.runner.token}-{self.system_id}-{self.job.project_id}-{self.project_runner_id}"
        )
        return "runner-" + hashlib.sha256(data.encode()).hexdigest()[:32]

    # --- directories -----------------------------------------------------------------
    def project_unique_dir(self, shared: bool = False) -> str:
        """``ProjectUniqueDir``: the repository path, else ``project-<id>``; in a shared
        builds dir under ``<short token>/<concurrent project id>/``."""
        path = urllib.parse.urlsplit(self.job.repo_url).path.removesuffix(".git").strip("/")
        slug = path if path and ".." not in path else f"project-{self.job.project_id}"
        if shared:
            slug = f"{self.short_token}/{self.project_runner_id}/{slug}"
        return slug + ("-empty" if self.git_strategy() == "empty" else "")

    @property
    def root_dir(self) -> str:
        """``RootDir``: the executor's ``builds_dir`` or its default (docker: ``/builds``);
        empty before ``StartBuild``."""
        if not self.options.started:
            return ""
        configured = self.options.builds_dir
        if configured is None:
            configured = self.runner.builds_dir
        return configured or self.options.default_builds_dir

    @property
    def build_dir(self) -> str:
        """``BuildDir``/``FullProjectDir`` (GIT_CLONE_PATH when set)."""
        if not self.options.started:
            return ""
        custom = self.job_variables().get("GIT_CLONE_PATH")
        shared = self.options.shared_builds_dir
        return custom or f"{self.root_dir}/{self.project_unique_dir(shared)}"

    @property
    def tmp_dir(self) -> str:
        """``TmpProjectDir``."""
        return self.build_dir + ".tmp"

    @property
    def cache_root(self) -> str:
        """``CacheDir``: the executor's ``cache_dir`` or its default (docker: ``/cache``)."""
        configured = self.options.cache_dir
        if configured is None:
            configured = self.runner.cache_dir
        return configured or self.options.default_cache_dir

    @property
    def cache_dir(self) -> str:
        """``Build.CacheDir``: the cache root + project dir (never the shared form)."""
        return f"{self.cache_root}/{self.project_unique_dir()}"

    @property
    def shell(self) -> str:
        """``Shell.Shell``: config_exec's, else ``[[runners]] shell``, else the default."""
        configured = self.options.config_shell
        if configured is None:
            configured = str(self.runner.raw.get("shell") or "")
        return configured or self.options.shell

    # --- variables and settings -------------------------------------------------------
    def job_variables(self) -> Variables:
        """The payload's variables only."""
        return Variables(list(self.job.variables))

    def timeout(self) -> int:
        """``GetBuildTimeout`` in seconds."""
        return self.job.timeout if self.job.timeout > 0 else DEFAULT_TIMEOUT

    def feature_flags(self) -> dict[str, bool]:
        """common/build_settings.go ``populateFeatureFlags`` over
        ``getVariablesForFeatureFlagResolution`` (common/build.go): per flag, the
        runner's TOML ``[runners.feature_flags]`` entry wins; else the last definition
        among the defaults, the runner's ``environment`` (``getBaseVariablesBeforeJob``)
        and the job's variables, expanded, parsed by ``strconv.ParseBool`` (the value as
        written: ``TRUE`` and ``True`` parse, ``tRuE`` does not); an unparsable one
        leaves the default. So a job variable overrides the runner's ``environment``
        entry, never its ``feature_flags``."""
        defaults = [Variable(k, str(v).lower(), internal=True) for k, v in FEATURE_FLAGS.items()]
        resolution = Variables(
            [*defaults, *self._runner_variables(), *self.job.variables], self.tmp_dir
        ).expand()
        flags = {}
        for name, default in FEATURE_FLAGS.items():
            if name in self.runner.feature_flags:
                flags[name] = self.runner.feature_flags[name]
                continue
            parsed = parse_bool(resolution.get(name))
            flags[name] = default if parsed is None else parsed
        return flags

    def flag(self, name: str) -> bool:
        """``IsFeatureFlagOn``."""
        return self.feature_flags()[name]

    def git_strategy(self) -> str:
        """GIT_STRATEGY, default fetch when the job allows it, else clone."""
        raw = self.job_variables().get("GIT_STRATEGY")
        if raw in ("clone", "fetch", "none", "empty"):
            return raw
        return "fetch" if self.job.allow_git_fetch else "clone"

    def _runner_variables(self) -> list[Variable]:
        """``RunnerConfig.GetVariables``: CI_RUNNER_SHORT_TOKEN + ``environment``."""
        variables = [Variable("CI_RUNNER_SHORT_TOKEN", self.short_token, internal=True)]
        for entry in self.runner.environment:
            key, sep, value = entry.partition("=")
            if sep and key:
                variables.append(Variable(key, value, public=False, internal=True))
        return variables

    def all_variables(self) -> Variables:
        """``GetAllVariables``: flags, base-before, job variables, base-after; expanded."""
        internal = {"public": True, "internal": True}
        flags = [Variable(k, str(v).lower(), **internal) for k, v in self.feature_flags().items()]
        before: list[Variable] = []
        if self.job.image.name:
            before.append(Variable("CI_JOB_IMAGE", self.job.image.name, **internal))
        before += self._runner_variables()
        before += [
            Variable("CI_BUILDS_DIR", self.root_dir, **internal),
            Variable("CI_PROJECT_DIR", self.build_dir, **internal),
            Variable("CI_CONCURRENT_ID", str(self.runner_id), **internal),
            Variable("CI_CONCURRENT_PROJECT_ID", str(self.project_runner_id), **internal),
            Variable("CI_SERVER", "yes", **internal),
            Variable("CI_JOB_STATUS", self.job_status, **internal),
            Variable("CI_JOB_TIMEOUT", str(self.timeout()), **internal),
        ]
        # GetCITLSVariables, after the default variables (getBaseVariablesBeforeJob).
        if chain := tlsca.ca_chain(self.runner.tls_ca_file):
            before.append(Variable(tlsca.VARIABLE_CA_FILE, chain, file=True, **internal))
        job = [v for v in self.job.variables if v.key not in FEATURE_FLAGS]
        after = [
            Variable(
                "CI_SHARED_ENVIRONMENT" if self.options.shared_env else "CI_DISPOSABLE_ENVIRONMENT",
                "true",
                **internal,
            ),
            Variable("CI_RUNNER_VERSION", VERSION, **internal),
            Variable("CI_RUNNER_REVISION", REVISION, **internal),
            Variable("CI_RUNNER_EXECUTABLE_ARCH", f"linux/{_goarch()}", **internal),
            Variable("RUNNER_TEMP_PROJECT_DIR", self.tmp_dir, **internal),
        ]
        return Variables([*flags, *before, *job, *after], self.tmp_dir).expand()

    def app_line(self) -> str:
        """``AppVersion.Line``."""
        return f"{NAME} {VERSION} ({REVISION})"


def _goarch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
