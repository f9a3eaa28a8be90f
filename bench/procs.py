"""Processes of this host: whether one is alive, and the files left by those that died.

A process killed with SIGKILL cannot clean up: its scratch folder (``bench-<pid>-…`` in the
temporary directory), a half-written encoder (``<key>.<pid>.tmp``) or a half-made MLflow store
(``.mlflow.db.<pid>.tmp`` and its ``-journal``) stay behind. Every such name carries the pid of
its maker, so the next run removes exactly those whose maker no longer exists.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through ``.<name>.<pid>`` and a rename: readers and other
    writers (workers write the same file at once) never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_dead_leftovers(paths: Iterable[Path], pattern: str) -> int:
    """Remove the files or folders among ``paths`` whose name matches ``pattern`` (a regex whose
    group ``pid`` is the maker's pid) and whose maker is dead; return how many went."""
    rx = re.compile(pattern)
    n = 0
    for path in paths:
        m = rx.fullmatch(path.name)
        if m is None or pid_alive(int(m.group("pid"))) or int(m.group("pid")) == os.getpid():
            continue
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            n += 1
        except OSError:  # another run removed it first, or it is not ours to remove
            pass
    return n
