"""PII masking: each kind masked, look-alikes kept, properties."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastllm.data.pii import PiiConfig, mask_pii, mask_text

MASKED = [
    ("mail me: jane.doe@example.org.", "mail me: <EMAIL>."),
    ("from 8.8.8.8 and 2606:4700:4700::1111", "from <IP_ADDRESS> and <IP_ADDRESS>"),
    ("call 555-123-4567 or (555) 987-6543", "call <PHONE> or <PHONE>"),
    ("intl +49 30 12345678.", "intl <PHONE>."),
    ("visa 4111-1111-1111-1111, amex 378282246310005", "visa <CREDIT_CARD>, amex <CREDIT_CARD>"),
    ("pay to FR14 2004 1010 0505 0001 3M02 606", "pay to <IBAN>"),
]

KEPT = [
    "Released version 1.2.3.4 yesterday; see v2.0.1.3 too.",
    "Router at 192.168.0.1, also 10.1.2.3 and 172.16.5.4; localhost 127.0.0.1.",
    "link-local fe80::1ff:fe23:4567:890a, unique-local fd12:3456:789a::1, loopback ::1",
    "Documentation ranges: 192.0.2.1, 198.51.100.7, 2001:db8::1",
    "Dates: 2024-01-15, 15.01.2024, 01/15/2024, 12:30:45",
    "ISBN 978-0-306-40615-7, ISBN-10 0-306-40615-2, 9780306406157",
    "Not a card: 4111 1111 1111 1112",
    "Not an IBAN: DE89 3704 0044 0532 0130 01",
    "Years 1999 2000 2001 2002 and sums 1,234,567,890",
    "Coordinates 48.8566, 2.3522; pi 3.14159265358979",
]


@pytest.mark.parametrize(("text", "want"), MASKED)
def test_masks(text, want):
    assert mask_text(text) == want


@pytest.mark.parametrize("text", KEPT)
def test_look_alikes_kept(text):
    assert mask_text(text) == text


def test_placeholders_configurable_and_batches():
    cfg = PiiConfig(email="[mail]", ip=None)
    assert mask_text("a@b.co at 8.8.8.8", cfg) == "[mail] at 8.8.8.8"
    assert mask_pii(pa.array(["x@y.org", None])) == ["<EMAIL>", None]
    with pytest.raises(ValueError, match=r"pii\.mail: unknown key"):
        PiiConfig.from_dict({"mail": "x"})
    with pytest.raises(TypeError, match=r"pii\.phone"):
        mask_text("x", PiiConfig(phone=3))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab .:-@()+0123456789DEFR\n")), max_size=80))
def test_idempotent(text):
    once = mask_text(text)
    assert mask_text(once) == once


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(exclude_characters="0123456789@", codec="utf-8")))
def test_text_without_digits_or_at_is_unchanged(text):
    assert mask_text(text) == text
