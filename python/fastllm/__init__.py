"""fastllm: raw web pages to a trained, aligned language model.

The data kernels live in the Rust extension ``fastllm._core``; this package
owns configuration, validation and messages.
"""

from fastllm import _core

__version__: str = _core.__version__


def set_num_threads(n: int) -> None:
    """Set how many threads the Rust kernels use (default: all cores, or
    ``FASTLLM_NUM_THREADS``). Safe to call at any time; takes effect at the
    next kernel call, including in processes forked after it."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads expects an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """How many threads the next Rust kernel will use."""
    return _core.get_num_threads()


from fastllm.data.extract import extract_text  # noqa: E402
from fastllm.tokenizer import Tokenizer  # noqa: E402

__all__ = ["__version__", "Tokenizer", "extract_text", "get_num_threads", "set_num_threads"]
