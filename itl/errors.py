"""A user error as every edge of itl tells it (the `itl` command, `python -m itl.bench`, the DVC
stages, the pytest plugin's reporter): which exceptions are the user's to fix (`EXPECTED`), and
their one line, `itl: error: <what> <the fix>` (`one_line`)."""
from __future__ import annotations

from itl import data, paths, runs, subsets

EXPECTED = (data.DataError, subsets.SubsetError, paths.StoreError, runs.RunError, ValueError,
            KeyError, OSError)


def one_line(e: BaseException) -> str:
    """One line: what went wrong, naming the thing, and the fix."""
    if isinstance(e, KeyError) and e.args:
        msg = str(e.args[0])
    elif isinstance(e, OSError) and e.strerror:  # from the OS, not from itl: name the file
        msg = f"cannot use {e.filename or 'a file'}: {e.strerror}" + (
            f" -> {e.filename2}" if e.filename2 else "")
    else:
        msg = str(e)
    return " ".join(line.strip() for line in msg.splitlines() if line.strip())
