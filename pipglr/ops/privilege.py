"""The outer container follows config.toml: privileged only when a runner asks for it.

The image's run label carries the nesting options its NESTED_PRIVILEGED build arg
chose (:data:`~pipglr.build.labels.NESTING_OPTIONS` or
:data:`~pipglr.build.labels.PRIVILEGED_NESTING_OPTIONS`), and stays so for runlabel users.
``pipglr up`` and ``pipglr quadlet`` instead decide from the config.toml secret
(:func:`choose`): the privileged options when a runner asks for privileged jobs (they
need a read-write /sys outside, see :mod:`pipglr.guest.privileged`), else the nesting
options only; :func:`fit` swaps them into the label's arguments. ``status`` and
``doctor`` name the privileged runners (:func:`status_fields`, :func:`finding`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipglr import layout, runnerconfig
from pipglr.build import labels
from pipglr.errors import PipglrError, UsageError
from pipglr.guest import privileged
from pipglr.ops import doctor

if TYPE_CHECKING:
    from pipglr.ops.operate import Operator

#: The doctor's row.
CHECK = "privileged runners"


@dataclass(frozen=True)
class OuterChoice:
    """The outer container's nesting options, and why."""

    privileged: bool
    reason: str

    @property
    def options(self) -> tuple[str, ...]:
        """The ``podman run`` options the choice stands for."""
        return labels.PRIVILEGED_NESTING_OPTIONS if self.privileged else labels.NESTING_OPTIONS

    def summary(self) -> str:
        """One line: which options, and why."""
        kind = "privileged" if self.privileged else "unprivileged"
        return f"{kind} outer container ({' '.join(self.options)}): {self.reason}"


def choose(config_text: str) -> OuterChoice:
    """The options the runners of ``config_text`` need."""
    runners = privileged.privileged_runners(runnerconfig.parse(config_text))
    if runners:
        return OuterChoice(True, privileged.asking(runners))
    return OuterChoice(False, "no runner asks for privileged jobs")


def _find(args: Sequence[str], part: Sequence[str]) -> int | None:
    for at in range(len(args) - len(part) + 1):
        if list(args[at : at + len(part)]) == list(part):
            return at
    return None


def fit(run_args: Sequence[str], choice: OuterChoice | None) -> list[str]:
    """The run label's arguments with its nesting options replaced by ``choice``'s
    (``None``: as the label has them)."""
    if choice is None:
        return list(run_args)
    for known in (labels.PRIVILEGED_NESTING_OPTIONS, labels.NESTING_OPTIONS):
        at = _find(run_args, known)
        if at is not None:
            return [*run_args[:at], *choice.options, *run_args[at + len(known) :]]
    raise UsageError(
        "the image's run label has neither of pipglr's nesting option sets (an older "
        "image?): pull or build a current one, or start it as it is with "
        "`pipglr runlabel run`"
    )


def status_fields(outer_privileged: bool, config_text: str | None) -> dict[str, Any]:
    """What ``pipglr status`` says about privilege: the outer mode, the privileged
    runners (with ``config_text``) and, when they do not fit, a warning."""
    fields: dict[str, Any] = {"outer": "privileged" if outer_privileged else "unprivileged"}
    if config_text is None:
        return fields
    runners = privileged.privileged_runners(runnerconfig.parse(config_text))
    fields["privileged"] = [r.describe() for r in runners]
    if warning := privileged.advice(runners, outer_privileged):
        fields["warning"] = warning
    return fields


def outer_privileged(inspect: Mapping[str, Any]) -> bool:
    """Whether ``podman container inspect`` shows a ``--privileged`` container."""
    host = inspect.get("HostConfig")
    return bool(host.get("Privileged")) if isinstance(host, dict) else False


def finding(config_text: str) -> doctor.Finding:
    """The doctor's row: privilege is allowed, but named with its cost."""
    runners = privileged.privileged_runners(runnerconfig.parse(config_text))
    if not runners:
        return doctor.Finding(
            CHECK, doctor.OK, "none: jobs run under seccomp; `pipglr up` starts pipglr unprivileged"
        )
    return doctor.Finding(
        CHECK,
        doctor.WARN,
        f"{privileged.describe(runners)}: privileged jobs run with {privileged.COST}",
        f"if they do not need it (docker:dind services do): `{privileged.drop_command(runners)}`, "
        "then `pipglr down && pipglr up`",
    )


def findings(op: Operator) -> list[doctor.Finding]:
    """The doctor's privilege row for ``op``'s config.toml secret (none without one)."""
    try:
        if layout.CONFIG_SECRET not in op.secrets():
            return []
        return [finding(op.read_config())]
    except (PipglrError, OSError) as exc:
        return [
            doctor.Finding(
                CHECK, doctor.WARN, f"not checked: {exc}",
                "pass the image that runs pipglr with --image (it reads config.toml)",
            )
        ]  # fmt: skip
