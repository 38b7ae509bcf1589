"""``python -m fastllm.data run``: inputs → extract → filters → dedup →
tokenize → shards, restartable, with the local engine
(:mod:`~fastllm.data.pipeline.local`) or Ray Data (:mod:`~fastllm.data.pipeline.ray`).

Both engines are built from the same phases (:mod:`~fastllm.data.pipeline.common`);
neither imports the other.

>>> report = run(PipelineConfig.load("configs/pipeline/web.toml", ["--output.dir", "out"]))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, Protocol

from fastllm.config import builder
from fastllm.data.config import PipelineConfig


class Engine(Protocol):
    """What ``PipelineConfig.build()`` returns: ``run()`` does the run and
    returns its report."""

    def run(self) -> dict[str, Any]: ...


@builder(PipelineConfig)
def build(cfg: PipelineConfig) -> Engine:
    """``PipelineConfig.build()``: the engine ``run.engine`` names, for
    ``cfg`` checked (:meth:`PipelineConfig.check`); building it loads the
    tokenizer and the plug-in stages, so config errors come before any work."""
    cfg.check()
    if cfg.run.engine == "ray":
        from fastllm.data.pipeline.ray import RayEngine

        return RayEngine(cfg)
    from fastllm.data.pipeline.local import LocalEngine

    return LocalEngine(cfg)


def run(cfg: PipelineConfig) -> dict[str, Any]:
    """Run the pipeline for ``cfg`` with its ``run.engine``; returns the report."""
    return build(cfg).run()


__all__ = ["Engine", "PipelineConfig", "build", "run"]
