"""Files in and out: atomic writes (:mod:`~fastllm.io.atomic`, the only way
the package writes a file), Arrow columns for the Rust kernels
(:mod:`~fastllm.io.arrow`) and the file readers (:mod:`~fastllm.io.readers`)."""

from fastllm.io.atomic import write_json_atomic, write_text_atomic

__all__ = ["write_json_atomic", "write_text_atomic"]
