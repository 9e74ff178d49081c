"""Run directories belong to the user: pinnsketch writes only its own files in them.

A directory is a pinnsketch run directory when it holds the marker file ``.pinnsketch-run``,
which only pinnsketch writes (DESIGN.md section 8). The marker is also the lock: a process
writing a run holds an exclusive advisory lock on it (``fcntl.flock`` on POSIX,
``msvcrt.locking`` on Windows) for the run's lifetime, so a second writer is refused instead
of interleaving its files with the first's. The operating system releases the lock when the
process ends, however it ends (a SIGKILL included), so a lock never goes stale.

``--overwrite`` is accepted only on a run directory, and removes only the files a run
writes (:data:`RUN_FILE_NAMES` and their temporary ``.NAME.tmp`` twins); anything else in
the directory is left alone and listed.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     with RunDirectory.create(Path(tmp) / "run", overwrite=False) as rd:
...         _ = (rd.path / "config.json").write_text("{}")
...         sorted(p.name for p in rd.path.iterdir())
['.pinnsketch-run', 'config.json']
"""

from __future__ import annotations

import datetime
import json
import os
import socket
from pathlib import Path
from typing import Any

__all__ = ["RunDirectory", "RunDirectoryInUse", "MARKER", "RUN_FILE_NAMES", "is_run_directory"]

MARKER = ".pinnsketch-run"
MARKER_FORMAT = "pinnsketch-run/1"

RUN_FILE_NAMES = frozenset({
    "config.json", "history.csv", "result.h5", "checkpoint.pt", "summary.json",
    "solution.png", "reference.png", "error.png", "history.png", "ranks.png", "monitor.png",
    "confusion.png",
})
"""Every file a PINN or classification run writes (besides the marker)."""


class RunDirectoryInUse(OSError):
    """Another process holds the run directory's lock."""


def is_run_directory(path: str | Path) -> bool:
    """Whether ``path`` is a directory holding pinnsketch's marker."""
    return (Path(path) / MARKER).is_file()


def _own_files(path: Path) -> list[Path]:
    names = set(RUN_FILE_NAMES) | {f".{n}.tmp" for n in RUN_FILE_NAMES}
    return [p for p in path.iterdir() if p.name in names and p.is_file()]


def _lock(fd: int) -> bool:
    """Take an exclusive non-blocking lock on ``fd``; False if another process holds it."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(marker: Path) -> str:
    try:
        info = json.loads(marker.read_text())
        return f" (pid {info['pid']} on {info['host']})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


class RunDirectory:
    """A locked pinnsketch run directory; use as a context manager (``close`` unlocks).

    Build with :meth:`create` (a new run) or :meth:`open` (resume).

    Attributes:
        path: the directory.
        foreign: after an overwrite, the names it left in place (no run writes them).
    """

    def __init__(self, path: Path, fd: int):
        self.path = path
        self._fd: int | None = fd
        self.foreign: list[str] = []

    @classmethod
    def create(cls, path: str | Path, overwrite: bool) -> RunDirectory:
        """Make ``path`` a run directory for a new run and lock it.

        A missing or empty directory is created/used. A non-empty one needs ``overwrite``
        and the marker; then only the files a run writes are removed (after the lock is
        taken, so a running run is never touched).

        Raises:
            ValueError: ``path`` is empty text or a file; a non-empty directory without
                ``overwrite``, or without the marker.
            RunDirectoryInUse: another process is writing the run.
            OSError: the directory cannot be created or written (the message names it).
        """
        if str(path).strip() == "":
            raise ValueError("--out is empty; give a directory for the run's files")
        out = Path(path)
        if out.exists() and not out.is_dir():
            raise ValueError(f"output path {str(out)!r} exists and is not a directory")
        occupied = out.is_dir() and any(p.name != MARKER for p in out.iterdir())
        if occupied and not overwrite:
            raise ValueError(f"output directory {str(out)!r} exists and is not empty; pass "
                             "--overwrite to replace the run in it, or choose another --out")
        if occupied and not is_run_directory(out):
            raise ValueError(f"refusing to overwrite {str(out)!r}: it is not a pinnsketch run "
                             f"directory (no {MARKER} marker), and pinnsketch deletes only "
                             "files of runs it wrote; choose another --out")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(f"cannot create output directory {str(out)!r}: "
                          f"{exc.strerror or exc}") from exc
        def clear(rd: RunDirectory) -> None:
            if overwrite:
                for p in _own_files(out):
                    p.unlink()
                rd.foreign = sorted(p.name for p in out.iterdir() if p.name != MARKER)

        return cls._claimed(out, clear)

    @classmethod
    def open(cls, path: str | Path) -> RunDirectory:
        """Lock the existing run in ``path`` to continue it (resume).

        A run directory written before markers existed (config.json and checkpoint.pt
        present) is accepted and gains the marker.

        Raises:
            FileNotFoundError: no such directory, or not a run (no marker, no config.json).
            RunDirectoryInUse: another process is writing the run.
        """
        out = Path(path)
        if not out.is_dir():
            raise FileNotFoundError(f"run directory {str(out)!r} does not exist")
        if not (is_run_directory(out) or (out / "config.json").is_file()):
            raise FileNotFoundError(f"{str(out)!r} is not a pinnsketch run directory (no "
                                    f"{MARKER} marker and no config.json); nothing to resume")
        return cls._claimed(out)

    @classmethod
    def _claimed(cls, out: Path, prepare=None) -> RunDirectory:
        """Lock ``out``, run ``prepare(rd)`` (if any) and write the marker; on any failure
        the lock is released."""
        rd = cls._locked(out)
        try:
            if prepare is not None:
                prepare(rd)
            rd._write_marker()
        except BaseException:
            rd.close()
            raise
        return rd

    @classmethod
    def _locked(cls, out: Path) -> RunDirectory:
        marker = out / MARKER
        try:
            fd = os.open(marker, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OSError(f"cannot write to output directory {str(out)!r}: "
                          f"{exc.strerror or exc}") from exc
        if not _lock(fd):
            os.close(fd)
            raise RunDirectoryInUse(
                f"run directory {str(out)!r} is being written by another pinnsketch "
                f"process{_holder(marker)}; wait for it to finish or choose another --out")
        return cls(out, fd)

    def _write_marker(self) -> None:
        info: dict[str, Any] = {
            "format": MARKER_FORMAT, "pid": os.getpid(), "host": socket.gethostname(),
            "locked_at": datetime.datetime.now(datetime.UTC).isoformat(),
        }
        data = (json.dumps(info) + "\n").encode()
        assert self._fd is not None
        os.lseek(self._fd, 0, os.SEEK_SET)
        os.write(self._fd, data.ljust(256))  # fixed size: never shrinks under a reader
        os.fsync(self._fd)

    def close(self) -> None:
        """Release the lock (the marker stays: the directory remains a run directory)."""
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases flock and msvcrt locks
            self._fd = None

    def __enter__(self) -> RunDirectory:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
