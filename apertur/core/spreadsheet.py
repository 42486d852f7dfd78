"""Values for CSV files people open in a spreadsheet: one rule for every export."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence

from django.http import StreamingHttpResponse

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def cell(value: str) -> str:
    """Text someone else chose (project names, company names, emails) must not run as a formula when the
    file is opened in a spreadsheet (OWASP "CSV injection"): it is prefixed with a quote."""
    return f"'{value}" if value[:1] in _FORMULA_STARTS else value


class _Line:
    """What ``csv.writer`` writes to: the line it formatted, handed back instead of stored."""

    def write(self, line: str, /) -> str:
        return line


#: Bytes of CSV text gathered before they are sent: a chunk a socket write, not one per row.
CHUNK_CHARS = 64 * 1024


def csv_lines(rows: Iterable[Sequence[object]]) -> Iterator[str]:
    """``rows`` as CSV text (``csv.writer``'s dialect), in chunks of about :data:`CHUNK_CHARS`."""
    writer = csv.writer(_Line())
    chunk: list[str] = []
    size = 0
    for row in rows:
        line = writer.writerow(row)
        chunk.append(line)
        size += len(line)
        if size >= CHUNK_CHARS:
            yield "".join(chunk)
            chunk, size = [], 0
    if chunk:
        yield "".join(chunk)


def csv_download(rows: Iterable[Sequence[object]], *, filename: str) -> StreamingHttpResponse:
    """A CSV attachment sent while ``rows`` are read: a large partner's export has a row per commission entry
    (hundreds of thousands), which an ``HttpResponse`` held in memory whole, as text, until the last one."""
    response = StreamingHttpResponse(csv_lines(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
