"""The end-of-run report: per stage, documents and bytes in and out, drop
reasons and flags; tokens, shards, throughput; the units skipped and why.
Printed as a table; the pipeline writes it as JSON (atomically,
:func:`fastllm.io.atomic.write_json_atomic`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

MAX_STAGE_ERRORS = 1000  # internal-error lines kept per stage (the counts are complete)


@dataclass
class StageStats:
    docs_in: int = 0
    docs_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    flagged: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    """The documents dropped as ``internal_error``, by id: ``"<id>: internal_error
    in <kernel>: <panic message>"`` (the first MAX_STAGE_ERRORS)."""

    def add(self, other: StageStats) -> None:
        self.docs_in += other.docs_in
        self.docs_out += other.docs_out
        self.bytes_in += other.bytes_in
        self.bytes_out += other.bytes_out
        self.seconds += other.seconds
        self.errors += other.errors[: max(0, MAX_STAGE_ERRORS - len(self.errors))]
        for mine, theirs in ((self.dropped, other.dropped), (self.flagged, other.flagged)):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StageStats:
        return cls(**d)


def merge(into: dict[str, StageStats], more: dict[str, Any]) -> None:
    for name, s in more.items():
        into.setdefault(name, StageStats()).add(
            s if isinstance(s, StageStats) else StageStats.from_dict(s)
        )


def stages_dict(stages: dict[str, StageStats]) -> dict[str, Any]:
    return {k: asdict(v) for k, v in stages.items()}


def _mb(n: int) -> str:
    return f"{n / 1e6:,.2f}"


def format_table(report: dict[str, Any]) -> str:
    """The report as a fixed-width text table."""
    rows = [("stage", "docs in", "docs out", "MB in", "MB out", "sec", "dropped / flagged")]
    for name, s in report["stages"].items():
        why = ", ".join(f"{k} {v}" for k, v in sorted(s["dropped"].items()))
        flags = ", ".join(f"{k} {v}" for k, v in sorted(s["flagged"].items()))
        rows.append(
            (
                name,
                f"{s['docs_in']:,}",
                f"{s['docs_out']:,}",
                _mb(s["bytes_in"]),
                _mb(s["bytes_out"]),
                f"{s['seconds']:.2f}",
                "; ".join(x for x in (why, flags and f"flagged: {flags}") if x),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for k, r in enumerate(rows):
        cells = [r[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(r[1:-1], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells + [r[-1]]).rstrip())
        if k == 0:
            lines.append("-" * len(lines[0]))
    t = report["totals"]
    lines.append("")
    lines.append(
        f"{t['documents']:,} documents, {t['tokens']:,} tokens in {t['shards']} shards "
        f"({t['oversized_documents']} over the shard cap); "
        f"{_mb(t['input_bytes'])} MB read in {t['seconds']:.2f} s = "
        f"{t['mb_per_s']:.2f} MB/s ({t['mb_per_s_per_core']:.2f} MB/s per core, {t['cores']} cores)"
    )
    if "val_documents" in t:
        lines.append(
            f"validation (val_shards/): {t['val_documents']:,} documents, {t['val_tokens']:,} tokens"
        )
    if report["skipped_units"]:
        lines.append(f"{len(report['skipped_units'])} input units skipped:")
        lines += [f"  {m}" for m in report["skipped_units"]]
    if report["errors"]:
        lines.append(f"{len(report['errors'])} documents skipped with errors (first 10):")
        lines += [f"  {m}" for m in report["errors"][:10]]
    internal = [m for s in report["stages"].values() for m in s.get("errors", ())]
    if internal:
        lines.append(f"{len(internal)} documents dropped with internal errors (first 10):")
        lines += [f"  {m}" for m in internal[:10]]
    return "\n".join(lines)
