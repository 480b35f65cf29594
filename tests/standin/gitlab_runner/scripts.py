"""Stage scripts as gitlab-runner's bash shell writes them (shells/bash.go ``BashWriter``,
shells/abstract.go ``AbstractShell.write*Script``, helpers/shell_escape.go).

Simplified where noted, but with the same visible trace lines and semantics: variables
exported, ``set -o errexit``/``pipefail`` so the first failing command ends the stage
with its exit code, ``$ command`` echoed in bold green before each command, the cache
helper invoked with the arguments the real helper gets.
"""

from __future__ import annotations

import hashlib
import json
import posixpath

from .buildinfo import BuildInfo
from .executoropts import RUNNER_COMMAND as RUNNER_COMMAND
from .jobspec import Cache, Variable

ANSI_BOLD_RED = "\033[31;1m"
ANSI_BOLD_GREEN = "\033[32;1m"
ANSI_BOLD_CYAN = "\033[36;1m"
ANSI_YELLOW = "\033[0;33m"
ANSI_RESET = "\033[0;m"
ANSI_CLEAR = "\033[0K"
TERM_TRAP = "trap 'exit 1' TERM"
#: shells/bash.go ``BashDetectShellScript`` (no login shell): the build container's Cmd.
BASH_DETECT_SHELL = """if [ -x /usr/local/bin/bash ]; then
\texec /usr/local/bin/bash 
elif [ -x /usr/bin/bash ]; then
\texec /usr/bin/bash 
elif [ -x /bin/bash ]; then
\texec /bin/bash 
elif [ -x /usr/local/bin/sh ]; then
\texec /usr/local/bin/sh 
elif [ -x /usr/bin/sh ]; then
\texec /usr/bin/sh 
elif [ -x /bin/sh ]; then
\texec /bin/sh 
elif [ -x /busybox/sh ]; then
\texec /busybox/sh 
else
\techo shell not found
\texit 1
fi

"""
#: shells/bash.go ``ContainerSigTermScriptForLinux`` (graceful stop of a build container).
SIGTERM_SCRIPT = """PROCS=$(cd /proc && ls -rvd [0-9]*) &&
for P in $PROCS; do
\tif [ $$ -ne $P ] && [ $P -ne 1 ]; then
\t\tkill -TERM $P 2>/dev/null &&
\t\tATTEMPTS=6 &&
\t\twhile [ -e /proc/$P ] && [ $ATTEMPTS -gt 0 ]; do
\t\t\tsleep 1 && ATTEMPTS=$((ATTEMPTS-1));
\t\tdone;
\tfi;
done
"""
_LITERAL = set(b",-./0123456789@ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz")
_QUOTE = set(b' !"#$%&()*+:;<=>?[]^`{|}~')
_ESCAPES = {7: r"\a", 8: r"\b", 9: r"\t", 10: r"\n", 11: r"\v", 12: r"\f", 13: r"\r"}
_ESCAPES.update({39: r"\'", 92: "\\\\"})


def shell_escape(text: str) -> str:
    """helpers/shell_escape.go ``ShellEscape``: literal, or ANSI-C ``$'...'`` quoting."""
    if not text:
        return "''"
    out: list[str] = []
    escape = False
    for byte in text.encode():
        if byte in _LITERAL:
            out.append(chr(byte))
        elif byte in _QUOTE:
            out.append(chr(byte))
            escape = True
        elif byte in _ESCAPES:
            out.append(_ESCAPES[byte])
            escape = True
        else:
            out.append(f"\\x{byte:02x}")
            escape = True
    joined = "".join(out)
    return f"$'{joined}'" if escape else joined


def go_quote(text: str) -> str:
    """Go's ``%q`` for the (ASCII) paths the writer quotes."""
    return json.dumps(text)


class BashWriter:
    """shells/bash.go ``BashWriter``: lines of the stage body, then ``Finish``."""

    def __init__(self, info: BuildInfo) -> None:
        self.info = info
        self.lines: list[str] = []
        self.indent = 0
        self.check_for_errors = info.flag("FF_ENABLE_BASH_EXIT_CODE_CHECK")

    def line(self, text: str) -> None:
        """``Line``."""
        self.lines.append("  " * self.indent + text)

    def checked(self) -> None:
        """``CheckForErrors`` (FF_ENABLE_BASH_EXIT_CODE_CHECK)."""
        if self.check_for_errors:
            self.line(
                "_runner_exit_code=$?; if [ $_runner_exit_code -ne 0 ]; then exit "
                "$_runner_exit_code; fi"
            )

    def command(self, command: str, *args: str) -> None:
        """``Command``: every word escaped."""
        self.line(" ".join(shell_escape(part) for part in (command, *args)))
        self.checked()

    def command_arg_expand(self, command: str, *args: str) -> None:
        """``CommandArgExpand``: arguments double-quoted (variables expand)."""
        self.line(" ".join([shell_escape(command), *(f'"{arg}"' for arg in args)]))
        self.checked()

    def notice(self, text: str) -> None:
        """``Noticef``: bold green."""
        self.line("echo " + shell_escape(ANSI_BOLD_GREEN + text + ANSI_RESET))

    def printf(self, text: str) -> None:
        """``Printf``."""
        self.line("echo " + shell_escape(ANSI_RESET + text))

    def warning(self, text: str) -> None:
        """``Warningf``: yellow."""
        self.line("echo " + shell_escape(ANSI_YELLOW + text + ANSI_RESET))

    def if_cmd(self, command: str, *args: str, output: bool = False) -> None:
        """``IfCmd``/``IfCmdWithOutput``."""
        words = " ".join(shell_escape(part) for part in (command, *args))
        self.line(f"if {words}{'' if output else ' >/dev/null 2>&1'} ; then")
        self.indent += 1

    def if_directory(self, path: str) -> None:
        """``IfDirectory``."""
        self.line(f"if [ -d {go_quote(path)} ]; then")
        self.indent += 1

    def if_file(self, path: str) -> None:
        """``IfFile``."""
        self.line(f"if [ -e {go_quote(path)} ]; then")
        self.indent += 1

    def else_(self) -> None:
        """``Else``."""
        self.indent -= 1
        self.line("else")
        self.indent += 1

    def end_if(self) -> None:
        """``EndIf``."""
        self.indent -= 1
        self.line("fi")

    def cd(self, path: str) -> None:
        """``Cd``."""
        self.command("cd", path)

    def mkdir(self, path: str) -> None:
        """``MkDir``."""
        self.command("mkdir", "-p", path)

    def rm_file(self, path: str) -> None:
        """``RmFile``."""
        self.command_arg_expand("rm", "-f", path)

    def rm_dir(self, path: str) -> None:
        """``RmDir``."""
        self.command_arg_expand("rm", "-r", "-f", path)

    def tmp_file(self, name: str) -> str:
        """``TmpFile``: a path under the project's ``.tmp`` directory."""
        return posixpath.join(self.info.tmp_dir, name)

    def variable(self, variable: Variable) -> None:
        """``Variable``: ``export``, file variables written to the tmp dir first."""
        if variable.file:
            path = self.tmp_file(variable.key)
            self.line(f"mkdir -p {go_quote(self.info.tmp_dir)}")
            self.line(f"printf '%s' {shell_escape(variable.value)} > {go_quote(path)}")
            self.line(f"export {shell_escape(variable.key)}={go_quote(path)}")
        else:
            self.line(f"export {shell_escape(variable.key)}={shell_escape(variable.value)}")

    def source_env(self, path: str) -> None:
        """``SourceEnv``: load ``$GITLAB_ENV``."""
        self.line(f"mkdir -p {go_quote(self.info.tmp_dir)}")
        self.line(f"touch {go_quote(path)}")
        self.line(f'while read -r line; do export "$line"; done < {go_quote(path)}')

    def finish(self) -> str:
        """``Finish``: the wrapper that runs the body in an errexit/pipefail subshell."""
        body = "".join(line + "\n" for line in self.lines)
        out = f"#!/usr/bin/env {self.info.shell}\n\n" + TERM_TRAP + "\n\n"
        if self.info.all_variables().bool("CI_DEBUG_TRACE"):
            out += "set -o xtrace\n"
        out += "if set -o | grep pipefail > /dev/null; then set -o pipefail; fi; set -o errexit\n"
        out += "set +o noclobber\n"
        if self.info.flag("FF_USE_LEGACY_BASH_EVAL"):
            out += ": | eval " + shell_escape(body) + "\n"
        else:
            out += f"({TERM_TRAP}; eval {shell_escape(body)}) < /dev/null\n"
        return out + "exit 0\n"


def cache_archive(info: BuildInfo, cache: Cache) -> tuple[str, str, str]:
    """shells/abstract.go ``newCacheConfig``: human key and archive path relative to the
    build dir (plus the alternate, hashed-key path)."""
    job = info.job
    key = info.all_variables().expand_value(cache.key) if cache.key else f"{job.name}/{job.ref}"
    hashed = hashlib.sha256(key.encode()).hexdigest()
    primary, alternate = (hashed, key) if info.flag("FF_HASH_CACHE_KEYS") else (key, hashed)

    def relative(name: str) -> str:
        return posixpath.relpath(posixpath.join(info.cache_dir, name, "cache.zip"), info.build_dir)

    return key, relative(primary), relative(alternate)
