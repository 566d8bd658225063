"""The README quick start and CI stay in step; the example config is the built-in default."""

from __future__ import annotations

import re
from pathlib import Path

from kdmft.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]


def _quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", section, flags=re.S)]


def test_quick_start_has_two_commands_and_ci_runs_the_second():
    cmds = _quick_start_commands()
    assert len(cmds) == 2 and all("\n" not in c for c in cmds)
    assert cmds[0].startswith("pip install ") and cmds[0].endswith("kdmft run")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert cmds[1] in ci


def test_example_config_is_the_default():
    cfg = RunConfig.from_toml(ROOT / "examples" / "default.toml")
    default = RunConfig()
    default.problem = default.problem.resolved()
    assert cfg.to_dict() == default.to_dict()


def test_digits_example_is_the_dataset_default():
    """examples/digits.toml is what `kdmft run --dataset digits` runs."""
    from kdmft.run import DATASET_DEFAULTS

    cfg = RunConfig.from_toml(ROOT / "examples" / "digits.toml")
    default = RunConfig()
    default.dataset.name = "digits"
    default.problem.weight_decay = DATASET_DEFAULTS["weight_decay"]
    default.problem.temperature = DATASET_DEFAULTS["temperature"]
    default.dataset.target_class = 0
    assert cfg.to_dict() == default.to_dict()
