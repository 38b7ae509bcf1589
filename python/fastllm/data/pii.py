"""PII masking: e-mail addresses, public IPv4/IPv6 addresses (private,
loopback, link-local, multicast and reserved ones are kept, as datatrove's
``PIIFormatter`` does), phone numbers, payment-card numbers (Luhn-checked)
and IBANs (mod-97 checked), each replaced by a placeholder. In Rust on all
cores with the GIL released.

Precision first: version numbers ("version 1.2.3.4", "v1.2.3.4"), dates,
ISBNs and lists of numbers are left alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastllm import _core
from fastllm.config import Section, knob
from fastllm.data.filters import _as_list
from fastllm.io.arrow import is_arrow, text_column


@dataclass
class PiiConfig(Section):
    """Placeholders per kind of PII; None leaves that kind unmasked."""

    table = "pii"

    email: str | None = knob("<EMAIL>", 'Replaces e-mail addresses.')
    ip: str | None = knob("<IP_ADDRESS>", 'Replaces public IPv4 and IPv6 addresses.')
    phone: str | None = knob("<PHONE>", 'Replaces phone numbers.')
    credit_card: str | None = knob("<CREDIT_CARD>", 'Replaces Luhn-valid payment-card numbers.')
    iban: str | None = knob("<IBAN>", 'Replaces mod-97-valid IBANs.')


def _placeholders(config: PiiConfig | None) -> dict[str, str | None]:
    config = PiiConfig() if config is None else config
    if not isinstance(config, PiiConfig):
        raise TypeError(f"mask_pii: config must be a PiiConfig, got {type(config).__name__}")
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        if v is not None and not isinstance(v, str):
            raise TypeError(f"pii.{f.name}: expected str or None, got {type(v).__name__}")
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(PiiConfig)}


def _run(texts: Any, placeholders: dict[str, str | None]) -> tuple[Any, list[tuple[int, str]]]:
    """The masked texts as a pyarrow string array, and ``(row, message)`` of
    the rows masking failed on. Fails closed: those rows are null, never the
    unmasked text."""
    import pyarrow as pa

    masked, failed = _core.mask_pii(texts, **placeholders)
    return pa.array(masked), failed


def mask_pii(texts: Sequence[str] | Any, config: PiiConfig | None = None) -> list[str | None]:
    """``texts`` (a list of str, or an Arrow string/binary column read in
    place by Rust) with PII replaced; nulls stay None. A text the masker
    fails on (a bug) comes back as None too, never unmasked; the pipeline's
    PII stage drops and counts those (``internal_error``)."""
    placeholders = _placeholders(config)
    if is_arrow(texts):
        return _run(text_column(texts, "mask_pii: texts"), placeholders)[0].to_pylist()
    texts = _as_list(texts, "mask_pii: texts")
    present = [k for k, t in enumerate(texts) if t is not None]
    masked, _ = _run([texts[k] for k in present], placeholders)
    out: list[str | None] = [None] * len(texts)
    for k, m in zip(present, masked.to_pylist(), strict=True):
        out[k] = m
    return out


def mask_column(texts: Any, config: PiiConfig | None = None) -> tuple[Any, list[tuple[int, str]]]:
    """An Arrow text column with PII replaced, as a pyarrow string array
    (column-wise, no per-document Python), and ``(row, message)`` of the
    rows the masker failed on, which are null in the result."""
    return _run(text_column(texts, "mask_pii: texts"), _placeholders(config))


def mask_text(text: str, config: PiiConfig | None = None) -> str:
    """One text with PII replaced. Raises RuntimeError if the masker fails
    on it (a bug): the unmasked text is never returned."""
    if not isinstance(text, str):
        raise TypeError(f"mask_text: text must be str, got {type(text).__name__}")
    masked, failed = _run(_as_list([text], "mask_text: text"), _placeholders(config))
    if failed:
        raise RuntimeError(f"mask_text: internal error (a bug in the PII masker): {failed[0][1]}")
    return masked[0].as_py()
