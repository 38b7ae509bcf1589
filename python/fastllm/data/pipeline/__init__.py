"""``python -m fastllm.data run``: inputs → extract → filters → dedup →
tokenize → shards, restartable, with the local engine
(:mod:`~fastllm.data.pipeline.local`) or Ray Data (:mod:`~fastllm.data.pipeline.ray`)."""

from __future__ import annotations

from typing import Any

from fastllm.data.config import PipelineConfig


def run(cfg: PipelineConfig) -> dict[str, Any]:
    """Run the pipeline for ``cfg`` with its ``run.engine``; returns the report."""
    cfg.check()
    if cfg.run.engine == "ray":
        from fastllm.data.pipeline.ray import run_ray

        return run_ray(cfg)
    from fastllm.data.pipeline.local import run_local

    return run_local(cfg)


__all__ = ["run"]
