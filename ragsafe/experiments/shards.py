"""Shards: every N-th question of a run, so a run splits over machines or processes and merges back."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from ragsafe.config import ConfigError
from ragsafe.corpora.schema import Question
from ragsafe.evals.score import score_run_dir
from ragsafe.experiments.index import RunIndex
from ragsafe.experiments.store import RunStore
from ragsafe.records import RunManifest, SampleRecord


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


def find_run_dirs(sources: list[str | Path]) -> list[Path]:
    """Run folders among ``sources``: each is a run folder or a folder that holds run folders."""
    found = []
    for s in sources:
        p = Path(s)
        if (p / "run.json").exists():
            found.append(p)
        elif p.is_dir():
            found += sorted(d for d in p.iterdir() if (d / "run.json").exists())
        else:
            raise ConfigError(f"{p}: no such run folder")
    return found


def merge_shards(sources: list[str | Path], out: str | Path, *, partial: bool = False) -> list[Path]:
    """Merge shard run folders into unsharded ones under ``out``; return the merged folders.

    Shards are grouped by config hash. Every shard 1..N of a group must be there (``partial``
    merges what there is). The merged folder is the one an unsharded run of the same config
    would have made (``out/run-HASH``), so running the sweep again there finds nothing to do. An
    existing merged folder is extended: records it holds are kept, new ones appended.
    """
    groups = _shard_groups(sources)
    merged = [_merge_group(h, members, out, _shard_count(h, members, sources, partial)) for h, members in groups.items()]
    RunIndex(Path(out)).refresh()
    return merged


def _shard_groups(sources: list[str | Path]) -> dict[str, list[tuple[Path, RunManifest]]]:
    groups: dict[str, list[tuple[Path, RunManifest]]] = {}
    for d in find_run_dirs(sources):
        rec = RunStore(d).read_run()
        if rec.shard:
            groups.setdefault(rec.config_hash, []).append((d, rec))
    if not groups:
        raise ConfigError(f"no shard run folders found in {', '.join(map(str, sources))} "
                          f"(shards are made by `ragsafe sweep FILE --shard i/N`)")
    for members in groups.values():
        members.sort(key=lambda m: m[1].shard.index)
    return groups


def _shard_count(h: str, members: list[tuple[Path, RunManifest]], sources: list[str | Path], partial: bool) -> int:
    """N of the group's i/N split; every shard must be there unless ``partial``."""
    counts = {r.shard.count for _, r in members}
    if len(counts) != 1:
        raise ConfigError(f"shards of run {h[:12]} disagree on N ({sorted(counts)}): "
                          f"merge the shards of one --shard i/N split at a time")
    n = counts.pop()
    missing = sorted(set(range(1, n + 1)) - {r.shard.index for _, r in members})
    if missing and not partial:
        raise ConfigError(f"run {h[:12]}: shard(s) {', '.join(f'{i}/{n}' for i in missing)} missing from "
                          f"{', '.join(map(str, sources))}; add their folders, or pass --partial")
    return n


def _new_records(store: RunStore, members: list[tuple[Path, RunManifest]]) -> list[SampleRecord]:
    """The shards' records the merged folder lacks (an answer replaces an error), in run order."""
    done = store.done_keys(include_errors=False)
    have_err = store.done_keys() - done
    best: dict[tuple[str, str], SampleRecord] = {}
    for d, _ in members:
        for r in RunStore(d).iter_samples():
            k = r.key
            if k in done or (k in best and not best[k].error) or (k in have_err and r.error):
                continue
            best[k] = r
    first = members[0][1]
    order = {v: i for i, v in enumerate(first.variants)}
    qpos = {q: i for i, q in enumerate(first.question_ids)}
    return sorted(best.values(), key=lambda r: (order.get(r.variant, 1 << 30), qpos.get(r.question_id, 1 << 30)))


def _merge_group(h: str, members: list[tuple[Path, RunManifest]], out: str | Path, n: int) -> Path:
    first = members[0][1]
    target = run_dir_for(out, h)
    store = RunStore(target)
    with store.lock():
        if store.exists():
            if store.read_run().config_hash != h:
                raise ConfigError(f"{target} holds a run with another config hash")
            store.repair()
        recs = _new_records(store, members)
        run_rec = {k: v for k, v in first.to_dict().items() if k not in ("shard", "schema_version")}
        run_rec["merged_from"] = [{"path": str(d), "shard": f"{r.shard.index}/{n}"} for d, r in members]
        run_rec["started_at"] = min(r.started_at or "" for _, r in members) or first.started_at
        run_rec["finished_at"] = max(r.finished_at or "" for _, r in members) or None
        store.write_run(run_rec)
        store.append_many(recs)
        store.compact()
    score_run_dir(target, allow_errors=bool(first.config.get("allow_errors")))
    return target
