"""Shards: every N-th question of a run, so a run splits over machines or processes and merges back."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from ragsafe.config import ConfigError
from ragsafe.corpora.benchmark import Question


@dataclasses.dataclass(frozen=True)
class Shard:
    """Slice ``index`` of ``count`` (1-based): questions at positions index-1, index-1+count, ...

    Every cell of one question lands in the same shard, so steps that variants share are cached
    on the machine that runs them. The slice depends only on the run's question list (in id order),
    so ``--shard i/N`` picks the same questions on every machine.
    """

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> "Shard":
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
        if not m:
            raise ConfigError(f"--shard {text!r}: expected i/N, e.g. --shard 1/4")
        i, n = int(m.group(1)), int(m.group(2))
        if n < 1 or not 1 <= i <= n:
            raise ConfigError(f"--shard {text!r}: need 1 <= i <= N (shards are numbered from 1)")
        return cls(i, n)

    def take(self, questions: list[Question]) -> list[Question]:
        return [q for j, q in enumerate(questions) if j % self.count == self.index - 1]

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def suffix(self) -> str:
        return f".shard-{self.index}of{self.count}"


def run_dir_for(out: str | Path, config_hash: str, shard: Shard | None = None) -> Path:
    """The folder of a run: its config hash names it, so the same config resumes the same folder."""
    return Path(out) / (f"run-{config_hash[:12]}" + (shard.suffix if shard else ""))
