"""``python -m fastllm.train.export``: a checkpoint as a Hugging Face model
folder (:mod:`fastllm.model.hf`).

The command line lives here so that the command users type stays put; the
code is in :mod:`fastllm.model.hf`.
"""

from fastllm.model.hf import main

if __name__ == "__main__":
    raise SystemExit(main())
