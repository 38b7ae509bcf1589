"""A filter stage loaded by name (``filter.stages``), as the quality filters
will be: drops documents that mention a word, counting them."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


class DropWord:
    name = "no_zebra"

    def __call__(self, table: pa.Table) -> tuple[pa.Table, dict[str, int]]:
        hit = pc.match_substring(table.column("text"), "zebra")
        n = pc.sum(hit).as_py() or 0
        return table.filter(pc.invert(hit)), ({"mentions_zebra": n} if n else {})


def factory():
    return DropWord()


def not_a_stage():
    return 42
