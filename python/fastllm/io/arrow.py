"""Arrow text columns for the Rust batch kernels.

The kernels (``quality_filter``, ``detect_languages``, ``mask_pii``,
``content_hashes``, ``minhash``, ``extract_batch``, ``encode_to_numpy``)
take a string/binary column as it is: a pyarrow ``Array`` or
``ChunkedArray``, or any object with ``__arrow_c_array__`` or
``__arrow_c_stream__``. Rust imports it through the Arrow C data interface
and reads the rows in place, so no row becomes a Python ``str`` on the way
in (``to_pylist`` would copy every document twice).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def is_arrow(obj: object) -> bool:
    """Whether ``obj`` speaks the Arrow PyCapsule interface (array or stream)."""
    return hasattr(obj, "__arrow_c_array__") or hasattr(obj, "__arrow_c_stream__")


def text_column(obj: Any, where: str) -> Any:
    """``obj`` as a pyarrow Array or ChunkedArray the kernels accept
    (string, large_string, string_view, binary, large_binary, binary_view).
    Other Arrow producers are wrapped without a copy; dictionary-encoded
    strings are decoded (the only case that copies)."""
    import pyarrow as pa

    if not isinstance(obj, (pa.Array, pa.ChunkedArray)):
        obj = pa.array(obj) if hasattr(obj, "__arrow_c_array__") else pa.chunked_array(obj)
    t = obj.type
    if pa.types.is_dictionary(t):
        obj = obj.cast(t.value_type)
        t = obj.type
    # The view types exist from pyarrow 16 on (we support 14).
    views = [getattr(pa.types, f"is_{v}_view", None) for v in ("string", "binary")]
    ok = (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or any(v is not None and v(t) for v in views)
    )
    if not ok:
        raise TypeError(f"{where}: expected an Arrow string or binary array, got {t}")
    return obj


def null_indices(col: Any) -> np.ndarray:
    """Positions of the nulls of a pyarrow Array/ChunkedArray."""
    if col.null_count == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))
