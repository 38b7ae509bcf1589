"""``python -m fastllm.plan``: the planner (:mod:`fastllm.model.plan`).

The command line lives here so that the command users type stays put; the
code is in :mod:`fastllm.model.plan`.
"""

from fastllm.model.plan import main

if __name__ == "__main__":
    raise SystemExit(main())
