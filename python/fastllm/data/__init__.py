"""The data pipeline: from raw web pages to clean documents."""

from fastllm.data.extract import Extracted, extract_batch, extract_text

__all__ = ["Extracted", "extract_batch", "extract_text"]
