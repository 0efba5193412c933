"""Files CareDesk writes that hold customers' data (report CSVs, charts, ``/mydata``
exports saved by the sandbox, the catalog export): created readable by their
owner only — 0600, and a folder that has to be made is made 0700.
(The SQLite database gets the same in ``storage.db.ensure_sqlite_dir``.)
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> Path:
    """Make ``path`` (0700) if it is missing; an existing folder is left as it is."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    return path


def write_private(path: Path, data: bytes | str) -> Path:
    """Write ``data`` (text as UTF-8) to ``path``, a new file created 0600.

    An existing file is replaced, and made 0600 too.
    """
    private_dir(path.parent)
    body = data.encode("utf-8") if isinstance(data, str) else data
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fd = -1
            fh.write(body)
    finally:
        if fd != -1:
            os.close(fd)
    return path
