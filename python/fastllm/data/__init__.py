"""The data pipeline: sources, extraction, quality filters, language id, PII
masking, and the ``fastllm.data`` CLI (``run``, ``verify``)."""

# The modules that register the builders of data.config's sections
# (FilterConfig, PiiSection, DedupConfig, PipelineConfig .build()).
import fastllm.data.dedup  # noqa: F401
import fastllm.data.pipeline  # noqa: F401
import fastllm.data.stages  # noqa: F401
from fastllm.data.extract import Extracted, extract_batch, extract_text

__all__ = ["Extracted", "extract_batch", "extract_text"]
