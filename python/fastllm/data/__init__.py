"""The data pipeline: sources, stages, mixing, and the ``fastllm.data`` CLI."""
