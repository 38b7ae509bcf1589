"""The data pipeline: sources, stages (extraction first), mixing, and the
``fastllm.data`` CLI."""

from fastllm.data.extract import Extracted, extract_batch, extract_text

__all__ = ["Extracted", "extract_batch", "extract_text"]
