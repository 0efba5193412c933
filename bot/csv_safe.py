"""CSV that a spreadsheet will not run: every CSV CareDesk writes goes through here.

A cell that starts with ``=``, ``+``, ``-``, ``@`` (or ``|``, ``%``) is taken for a
formula by Excel and LibreOffice: a customer named ``=HYPERLINK("http://…")``
would become a link in a manager's export. As OWASP recommends ("CSV
Injection"), such text cells get a leading ``'`` so the spreadsheet shows them
as text. The writing is `defusedcsv <https://pypi.org/project/defusedcsv/>`_'s;
it leaves numbers alone (a Python ``int``/``float``, and text that is only a
number such as ``-2`` or ``-12.50``), so numeric columns stay numbers. OWASP
also lists a leading tab and carriage return, which defusedcsv does not: those
are handled here the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from defusedcsv import csv as defused

# Characters after which the leading ' was added (defusedcsv's and OWASP's).
TRIGGERS = ("=", "+", "-", "@", "|", "%", "\t", "\r")
_ONLY_HERE = ("\t", "\r")  # the ones defusedcsv does not neutralise


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in _ONLY_HERE:
        return "'" + value
    return value


class _Writer:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._inner.writerow([_cell(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(f: Any, **options: Any) -> _Writer:
    """Like ``csv.writer``; formula-looking text cells are neutralised."""
    return _Writer(defused.writer(f, **options))


class DictWriter:
    """Like ``csv.DictWriter``; formula-looking text cells are neutralised."""

    def __init__(self, f: Any, fieldnames: Sequence[str], **options: Any) -> None:
        self.fieldnames = list(fieldnames)
        self._inner = defused.DictWriter(f, fieldnames=self.fieldnames, **options)

    def writeheader(self) -> Any:
        return self._inner.writeheader()

    def writerow(self, row: Mapping[str, Any]) -> Any:
        return self._inner.writerow({key: _cell(value) for key, value in row.items()})

    def writerows(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            self.writerow(row)


def unneutralise(cell: str) -> str:
    """A cell read back from a CSV this module wrote: without the ``'`` it was given (catalog import)."""
    if cell[:1] == "'" and cell[1:2] in TRIGGERS:
        cell = cell[1:]
        if cell[:1] not in _ONLY_HERE:  # defusedcsv also wrote every | of such a cell as \|
            cell = cell.replace("\\|", "|")
    return cell
