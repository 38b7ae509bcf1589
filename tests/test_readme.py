"""The README's set-up commands and CI must not drift apart."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one():
    readme = (REPO / "README.md").read_text()
    setup = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    blocks = _bash_blocks(setup)
    assert len(blocks) == 2, blocks
    main_cmd, test_cmd = blocks
    assert "python -m fastllm.pretrain" in main_cmd
    ci = (REPO / ".ci" / "run").read_text()
    assert test_cmd in ci.splitlines(), "CI must run the README's test command verbatim"
