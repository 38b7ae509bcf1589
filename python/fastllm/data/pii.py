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


def mask_pii(texts: Sequence[str] | Any, config: PiiConfig | None = None) -> list[str | None]:
    """``texts`` (a list of str, or an Arrow string/binary column read in
    place by Rust) with PII replaced; nulls stay None."""
    config = PiiConfig() if config is None else config
    if not isinstance(config, PiiConfig):
        raise TypeError(f"mask_pii: config must be a PiiConfig, got {type(config).__name__}")
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        if v is not None and not isinstance(v, str):
            raise TypeError(f"pii.{f.name}: expected str or None, got {type(v).__name__}")
    if is_arrow(texts):
        col = text_column(texts, "mask_pii: texts")
        return _core.mask_pii(col, **dataclasses.asdict(config))
    texts = _as_list(texts, "mask_pii: texts")
    present = [k for k, t in enumerate(texts) if t is not None]
    masked = _core.mask_pii([texts[k] for k in present], **dataclasses.asdict(config))
    out: list[str | None] = [None] * len(texts)
    for k, m in zip(present, masked, strict=True):
        out[k] = m
    return out


def mask_text(text: str, config: PiiConfig | None = None) -> str:
    """One text with PII replaced."""
    if not isinstance(text, str):
        raise TypeError(f"mask_text: text must be str, got {type(text).__name__}")
    return mask_pii([text], config)[0]  # type: ignore[return-value]
