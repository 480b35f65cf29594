"""Which files an artifact holds, and the zip archive itself.

- :class:`FileArchiver`: commands/helpers/file_archiver.go (``enumerate``,
  ``processPaths``/``processPath``, ``process``, ``isExcluded``, ``processUntracked``)
  with its log lines.
- :func:`create_zip`: helpers/archives/zip_create.go (``CreateZipArchive``,
  ``createZipEntry``) as the default ``zip`` archiver writes it
  (commands/helpers/archive/ziplegacy: files sorted, directories as ``name/``, symbolic
  links stored with their target, files deflated, the UID/GID and timestamp extra
  fields of helpers/archives/zip_extra*.go).
- :func:`extract_zip`: helpers/archives/zip_extract.go (``ExtractZipArchive``): parents
  created, files and links replaced, then modes, owners and times applied.

Simplified: no ``zipzstd``/``tarzstd``/``gzip``/``raw`` formats, no compression levels;
members with an absolute or ``..`` path are skipped with a warning instead of written.
"""

from __future__ import annotations

import os
import shutil
import stat
import struct
import subprocess
import time
import zipfile
from collections.abc import Iterator
from typing import BinaryIO

from . import log, patterns

UID_GID_FIELD = 0x7875
TIMESTAMP_FIELD = 0x5455


def _is_git_path(path: str) -> bool:
    """helpers/archives/path_check_helper.go ``isPathAGitDirectory``."""
    return os.path.normpath(path).split(os.sep)[0] == ".git"


def _git_warning(operation: str) -> None:
    """``printGitArchiveWarning``."""
    log.warning(f"Part of .git directory is on the list of files to {operation}")
    log.warning("This may introduce unexpected problems")


def _walk(path: str) -> Iterator[str]:
    """``filepath.Walk`` order: the path, then its entries lexically (links not followed)."""
    yield path
    if os.path.isdir(path) and not os.path.islink(path):
        try:
            names = sorted(os.listdir(path))
        except OSError:
            return
        for name in names:
            yield from _walk(os.path.join(path, name))


class FileArchiver:
    """``fileArchiver``: ``--path``, ``--exclude`` and ``--untracked`` → files."""

    def __init__(self, paths: list[str], exclude: list[str], untracked: bool) -> None:
        self.paths, self.exclude, self.untracked = paths, exclude, untracked
        self.wd = os.getcwd()
        self.files: dict[str, os.stat_result] = {}
        self.excluded: dict[str, int] = {}

    def enumerate(self) -> None:
        """``enumerate``: paths, then untracked files, then the exclusion counts."""
        for path in self.paths:
            self._process_path(path)
        if self.untracked:
            self._process_untracked()
        for rule, count in self.excluded.items():
            log.info(f"{rule}: excluded {count} files")

    def sorted_files(self) -> list[str]:
        """``sortedFiles``."""
        return sorted(self.files)

    def _process_path(self, path: str) -> None:
        if not path:
            log.warning("No matching files. Path is empty.")
            return
        try:
            relative = patterns.relative_in_project(path, self.wd)
        except ValueError as exc:
            log.warning(f"processPath: {exc}")
            return
        found = sum(
            1 for match in patterns.glob(relative) for item in _walk(match) if self._process(item)
        )
        if found == 0:
            log.warning(
                f"{path}: no matching files. Ensure that the artifact path is relative to "
                f"the working directory ({self.wd})"
            )
        else:
            log.info(f"{path}: found {found} matching artifact files and directories")

    def _process(self, match: str) -> bool:
        """``process``: inside the build directory, not excluded, and existing."""
        relative = os.path.relpath(os.path.abspath(match), self.wd)
        if relative.startswith(".." + os.sep):
            log.warning(f"{match}: not supported: outside build directory")
            return False
        rule = self._excluded_by(relative)
        if rule is not None:
            self.excluded[rule] = self.excluded.get(rule, 0) + 1
            return False
        try:
            self.files[relative.replace(os.sep, "/")] = os.lstat(relative)
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.warning(f"{match}: {exc}")
            return False
        return True

    def _excluded_by(self, relative: str) -> str | None:
        """``isExcluded``: the first ``--exclude`` pattern matching, if any."""
        path = relative.replace(os.sep, "/")
        for pattern in self.exclude:
            try:
                rule = patterns.relative_in_project(pattern, self.wd)
            except ValueError as exc:
                log.warning(f"isExcluded: {exc}")
                return None
            if patterns.match(rule.replace(os.sep, "/"), path):
                return pattern
        return None

    def _process_untracked(self) -> None:
        """``processUntracked``: ``git ls-files -o -z``."""
        try:
            output = subprocess.run(
                ["git", "ls-files", "-o", "-z"], check=True, stdout=subprocess.PIPE
            ).stdout
        except (OSError, subprocess.CalledProcessError) as exc:
            log.warning(f"untracked: {exc}")
            return
        found = sum(1 for name in output.decode().split("\0") if name and self._process(name))
        if found == 0:
            log.warning("untracked: no files")
        else:
            log.info(f"untracked: found {found} files")


def _extra(info: os.stat_result) -> bytes:
    """``createZipExtra``: the UID/GID field (version 1, 4-byte ids), then the extended
    timestamp field (flag 1: modification time)."""
    uid_gid = struct.pack("<BBIBI", 1, 4, info.st_uid, 4, info.st_gid)
    stamp = struct.pack("<BI", 1, int(info.st_mtime) & 0xFFFFFFFF)
    return (
        struct.pack("<HH", UID_GID_FIELD, len(uid_gid))
        + uid_gid
        + struct.pack("<HH", TIMESTAMP_FIELD, len(stamp))
        + stamp
    )


def _header(name: str, info: os.stat_result) -> zipfile.ZipInfo:
    """``zip.FileInfoHeader`` + ``createZipExtra`` + the UTF-8 (EFS) flag."""
    modified = time.localtime(max(info.st_mtime, 315532800))[:6]  # zip dates start in 1980
    header = zipfile.ZipInfo(name, date_time=modified)
    header.create_system = 3
    header.external_attr = (info.st_mode & 0xFFFF) << 16
    header.extra = _extra(info)
    header.flag_bits |= 0x800
    return header


def _add(archive: zipfile.ZipFile, name: str) -> None:
    """``createZipEntry``: one file, directory or symbolic link; others are ignored."""
    try:
        info = os.lstat(name)
    except OSError as exc:
        log.warning(f"File ignored: {exc}")
        return
    if stat.S_ISDIR(info.st_mode):
        header = _header(name + "/", info)
        header.external_attr |= 0x10
        archive.writestr(header, b"")
    elif stat.S_ISLNK(info.st_mode):
        archive.writestr(_header(name, info), os.readlink(name).encode())
    elif stat.S_ISREG(info.st_mode):
        header = _header(name, info)
        header.compress_type = zipfile.ZIP_DEFLATED
        header.file_size = info.st_size
        with open(name, "rb") as source, archive.open(header, "w") as target:
            shutil.copyfileobj(source, target, 1 << 20)
    else:
        log.warning(f"File ignored: {name}")


def create_zip(target: BinaryIO, names: list[str]) -> None:
    """``CreateZipArchive`` of ``names`` (relative to the working directory)."""
    warned = False
    with zipfile.ZipFile(target, "w") as archive:
        for name in names:
            if _is_git_path(name) and not warned:
                _git_warning("archive")
                warned = True
            _add(archive, name)


def _mode(member: zipfile.ZipInfo) -> int:
    """``FileHeader.Mode``: the Unix mode, or the MS-DOS fallback (0755 dirs, 0644 files)."""
    mode = member.external_attr >> 16
    if member.create_system == 3 and mode:
        return mode
    return (stat.S_IFDIR | 0o755) if member.filename.endswith("/") else (stat.S_IFREG | 0o644)


def _safe(name: str) -> bool:
    return not os.path.isabs(name) and ".." not in name.replace("\\", "/").split("/")


def _extract_one(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> None:
    """``extractZipFile``."""
    name, mode = member.filename, _mode(member)
    os.makedirs(os.path.dirname(name.rstrip("/")) or ".", 0o777, exist_ok=True)
    if stat.S_ISDIR(mode) or name.endswith("/"):
        os.makedirs(name, stat.S_IMODE(mode) & 0o777, exist_ok=True)
    elif stat.S_ISLNK(mode):
        target = archive.read(member).decode()
        if os.path.lexists(name):
            os.remove(name)
        os.symlink(target, name)
    elif stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        log.warning(f'File ignored: "{name}"')
    else:
        if os.path.lexists(name):
            os.remove(name)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        with archive.open(member) as source, open(os.open(name, flags, mode & 0o777), "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)


def _timed(mode: int) -> bool:
    """``processZipTimestampField`` sets times of directories and regular files only."""
    return stat.S_ISDIR(mode) or stat.S_ISREG(mode)


def _apply_extra(member: zipfile.ZipInfo, mode: int) -> None:
    """``processZipExtra``: owner from the UID/GID field, times from the timestamp field
    (directories and regular files only)."""
    extra, offset = member.extra, 0
    while offset + 4 <= len(extra):
        kind, size = struct.unpack_from("<HH", extra, offset)
        data = extra[offset + 4 : offset + 4 + size]
        offset += 4 + size
        if kind == UID_GID_FIELD:
            if len(data) != 11 or data[0] != 1 or data[1] != 4 or data[6] != 4:
                raise OSError("uid/gid data not supported")
            _, _, uid, _, gid = struct.unpack("<BBIBI", data)
            os.lchown(member.filename, uid, gid)
        elif kind == TIMESTAMP_FIELD and len(data) >= 5 and data[0] & 1 and _timed(mode):
            os.utime(member.filename, (time.time(), struct.unpack_from("<I", data, 1)[0]))


def extract_zip(path: str) -> None:
    """``ExtractZipFile`` into the working directory."""
    with zipfile.ZipFile(path) as archive:
        members = [m for m in archive.infolist() if _safe(m.filename)]
        for skipped in set(archive.infolist()) - set(members):
            log.warning(f"{skipped.filename}: File ignored: path outside the extraction directory")
        warned = False
        for member in members:
            if _is_git_path(member.filename) and not warned:
                _git_warning("extract")
                warned = True
            try:
                _extract_one(archive, member)
            except OSError as exc:
                log.warning(f"{member.filename}: {exc} (suppressing repeats)")
        for member in members:
            mode = _mode(member)
            try:
                if not stat.S_ISLNK(mode):
                    os.chmod(member.filename, stat.S_IMODE(mode) & 0o777)
                _apply_extra(member, mode)
            except OSError as exc:
                log.warning(f"{member.filename}: {exc} (suppressing repeats)")
