"""Shared pieces of the dedup tests: thread-count switching, text strategies."""

from __future__ import annotations

import contextlib

from hypothesis import strategies as st

import fastllm

# Characters whose Unicode properties are old and stable (the Rust tables and
# Python's unicodedata may be of different Unicode versions): ASCII, Latin,
# Greek (final sigma), Cyrillic, Devanagari marks, Arabic, CJK, kana, Thai,
# punctuation and symbols, odd spaces, a combining accent, a titlecase letter,
# letter and other numbers, a format character, a control, an emoji.
ALPHABET = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    " \t\n\r.,;:!?'\"()-_/\\@#$%&*+=<>[]{}|~`^"
    "éÄßøÑçİıΑΣσςλЖжяनमस्तेسلام٣我爱北京天安门カタカナひらがなสวัสดี"
    "—…“”«»¿¡·€©™→½Ⅻǅ\u00a0\u2009\u3000\u200b\u0301\x00\x1f😀"
)

text = st.text(alphabet=ALPHABET, max_size=80)
words_text = st.lists(
    st.sampled_from(["the", "cat", "Sat", "on", "mat", "我", "爱", "ΣΟΦΙΑ", "naïve", "x1"]),
    max_size=30,
).map(" ".join)


@contextlib.contextmanager
def threads(n: int):
    before = fastllm.get_num_threads()
    fastllm.set_num_threads(n)
    try:
        yield
    finally:
        fastllm.set_num_threads(before)
