"""The Python side of the one panic policy of the Rust kernels
(``rust/src/guard.rs``).

A batch kernel that panics on one document (a bug) does not fail the batch:
it returns ``(row, panic message)`` of that document beside its results,
whose row for it holds nothing usable (zeros, no ids). A wrapper that gives
its caller one result per input row hands the failures on with
:func:`hand_over`: into the caller's ``failures=`` list when it passed one
(the pipeline does, and drops those documents as ``internal_error``), else
as a RuntimeError naming the rows, so that an ordinary call never returns
a made-up result for a document.
"""

from __future__ import annotations

from collections.abc import Sequence

Failures = list[tuple[int, str]]
"""``(row, panic message)`` of every document a kernel failed on, in row order."""


def hand_over(where: str, failed: Sequence[tuple[int, str]], into: list | None) -> None:
    """Append ``failed`` to ``into``; without a list, raise RuntimeError when
    there are any (``where`` names the function in the message)."""
    if not failed:
        return
    if into is not None:
        into.extend((int(k), str(m)) for k, m in failed)
        return
    shown = "; ".join(f"row {k}: {m}" for k, m in failed[:3])
    more = f" and {len(failed) - 3} more" if len(failed) > 3 else ""
    raise RuntimeError(
        f"{where}: internal error (a bug in the kernel) on {len(failed)} document(s) "
        f"({shown}{more}); pass failures=[] to get their rows and leave them out instead"
    )
