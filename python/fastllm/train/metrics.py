"""Run metrics: JSON lines, TensorBoard when installed, and the loss-curve PNG."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from fastllm.io.atomic import atomic_open, atomic_path


class MetricsWriter:
    """Appends one JSON object per record to ``<out_dir>/metrics.jsonl`` (and
    TensorBoard scalars under ``<out_dir>/tb`` when tensorboard is installed).
    Only the main rank writes; on other ranks every call is a no-op."""

    def __init__(self, out_dir: str | Path, enabled: bool = True, tensorboard: bool = True) -> None:
        self.path = Path(out_dir) / "metrics.jsonl"
        self.enabled = enabled
        self.tb = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard not installed: JSONL only
                pass
            else:
                self.tb = SummaryWriter(str(Path(out_dir) / "tb"))

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, allow_nan=True) + "\n")
        if self.tb is not None:
            step = record.get("step", 0)
            for key, value in record.items():
                if (
                    key != "step"
                    and isinstance(value, (int, float))
                    and not isinstance(value, bool)
                ):
                    self.tb.add_scalar(key, value, step)

    def truncate_after(self, step: int) -> None:
        """Drop records past ``step`` (a resumed run rewrites what it repeats)."""
        if not self.enabled or not self.path.is_file():
            return
        kept = [r for r in read_records(self.path) if r.get("step", 0) <= step]
        with atomic_open(self.path, "w") as f:
            f.writelines(json.dumps(r, allow_nan=True) + "\n" for r in kept)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None


def read_records(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a crash mid-write
                continue
    return out


def plot_loss_curve(
    records: list[dict[str, Any]], path: str | Path, title: str = ""
) -> Path | None:
    """Training (and validation) loss against step as a PNG; None, with a
    message, when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("loss curve skipped: matplotlib is not installed (pip install matplotlib)")
        return None
    train = [(r["step"], r["loss"]) for r in records if "loss" in r and _finite(r["loss"])]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    if train:
        ax.plot(*zip(*train, strict=True), label="train loss", lw=1.2)
    if val:
        ax.plot(*zip(*val, strict=True), "o-", label="validation loss", lw=1.5)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(title or "loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)
