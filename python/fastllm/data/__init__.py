"""The data pipeline: sources, extraction, quality filters, language id, PII
masking, and the ``fastllm.data`` CLI (``run``, ``verify``)."""

# Registers PipelineConfig.build() (a light module: the engines load on use).
import fastllm.data.pipeline  # noqa: F401
from fastllm.data.extract import Extracted, extract_batch, extract_text

__all__ = ["Extracted", "extract_batch", "extract_text"]
