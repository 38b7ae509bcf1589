"""``python -m fastllm.generate``: sampling from a checkpoint (:mod:`fastllm.model.generate`).

The command line lives here so that the command users type stays put; the
code is in :mod:`fastllm.model.generate`.
"""

from fastllm.model.generate import main

if __name__ == "__main__":
    raise SystemExit(main())
