"""Re-read a run's stored raw outputs with an LLM judge; keep its letters beside the strict ones.

``ragsafe rejudge RUN_DIR --judge-model NAME`` sends every stored raw output — the greedy answer
and each self-consistency sample — to :func:`ragsafe.agents.judge.judge` and appends one line per
(variant, question) to ``judge.jsonl`` in the run folder, next to ``judge.json`` (which judge,
which prompt, when). ``samples.jsonl`` is never rewritten. Lines are appended as questions finish
(fsynced), so an interrupted rejudge loses nothing and the same command resumes; a folder holds
the letters of one judge (model and prompt), and another judge is refused with the fix named.
Every judge call goes through the response cache like any other call.

``score``/``report --letters judge`` then read these letters instead of the strict ones
(:func:`apply_judge`), and every summary of a judged run carries the strict-vs-judge agreement.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable

from ragsafe.agents import judge as judge_agent
from ragsafe.config import ConfigError
from ragsafe.experiments.store import RunStore

JUDGE_FILE = "judge.jsonl"
JUDGE_META = "judge.json"
LETTER_SOURCES = ("strict", "judge")


def judge_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / JUDGE_FILE


def read_judge(run_dir: str | Path) -> dict[tuple[str, str], dict]:
    """Judge lines of a run folder by (variant, question id); a torn last line is skipped."""
    p = judge_path(run_dir)
    out: dict[tuple[str, str], dict] = {}
    if not p.exists():
        return out
    with open(p, encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                break
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            out[(rec["variant"], rec["question_id"])] = rec
    return out


def read_meta(run_dir: str | Path) -> dict | None:
    p = Path(run_dir) / JUDGE_META
    return json.loads(p.read_text(encoding="utf-8")) if p.exists() else None


def apply_judge(samples: list[dict], judged: dict[tuple[str, str], dict], run_dir: Any = "") -> list[dict]:
    """``samples`` with the judge's letters in place of the strict ones (copies; ``letter_strict`` kept).

    A record the judge has not read (an error record) keeps its strict letter; ``correct`` follows
    the letter. Raises :class:`ConfigError` when the judge file does not cover the answered records.
    """
    out, missing = [], []
    for s in samples:
        j = judged.get((s["variant"], s["question_id"]))
        if j is None:
            if not s.get("error"):
                missing.append(f"{s['variant']}/{s['question_id']}")
            out.append(s)
            continue
        new = s.model_copy() if hasattr(s, "model_copy") else dict(s)  # a stored record stays untouched
        new["letter_strict"] = s.get("letter")
        new["letter"] = j["letter"]
        new["correct"] = j["letter"] == s.get("answer_key")
        new["answer_source"] = "judge"
        if isinstance(s.get("sc"), dict) and j.get("sc_ballots") is not None:
            new["sc"] = {**s["sc"], "ballots": j["sc_ballots"], "ballots_strict": s["sc"].get("ballots")}
        out.append(new)
    if missing:
        raise ConfigError(f"{run_dir}: the judge has not read {len(missing)} record(s) (e.g. {missing[:3]}); "
                          f"run `ragsafe rejudge {run_dir} --judge-model NAME` to finish, or score with --letters strict")
    return out


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _append(path: Path, recs: list[dict]) -> None:
    blob = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in recs).encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(blob)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _repair(path: Path) -> None:
    if path.exists():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(path, "r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)


async def judge_record(llm, rec: dict, letters: list[str]) -> dict:
    """One judge line for one sample record: the greedy letter and, for SC records, each ballot."""
    greedy = await judge_agent.judge(llm, rec.get("raw_output"), letters)
    out: dict[str, Any] = {"variant": rec["variant"], "question_id": rec["question_id"], "letter": greedy.value,
                           "strict_letter": rec.get("letter"), "raw_output": rec.get("raw_output")}
    items = [greedy]
    sc = rec.get("sc")
    if isinstance(sc, dict) and sc.get("raw") is not None:
        got = await asyncio.gather(*(judge_agent.judge(llm, r, letters) for r in sc["raw"]))
        out["sc_ballots"] = [g.value for g in got]
        items += got
    out["calls"] = sum(1 for i in items if i.call)
    out["cached_calls"] = sum(1 for i in items if i.call.get("cached"))
    out["fallbacks"] = sum(1 for i in items if i.fallback)
    out["fallback_reasons"] = sorted({i.reason for i in items if i.fallback})
    forms = {i.call.get("structured_form") for i in items if i.call}
    out["structured_form"] = sorted(f for f in forms if f) or None
    out["judge_raw"] = greedy.raw
    return out


def rejudge(run_dir: str | Path, llm, *, judge_id: dict[str, Any], concurrency: int = 4,
            progress: Callable[[str], None] = print) -> dict[str, Any]:
    """Judge every answered record of ``run_dir`` not judged yet; return counts of this session.

    Args:
        run_dir: a run folder (its ``samples.jsonl`` is only read).
        llm: the judge's client (:class:`ragsafe.llm.client.LLM`), with the response cache.
        judge_id: who judges (model, base URL kind): written to ``judge.json``; a folder judged by
            another model or prompt is refused.
        concurrency: records judged at once.
    """
    from ragsafe.corpora.benchmark import load_benchmark

    store = RunStore(run_dir)
    run = store.read_run()
    meta_path = Path(run_dir) / JUDGE_META
    ident = {**judge_id, "prompt_hash": judge_agent.JUDGE_PROMPT_HASH}
    old = read_meta(run_dir)
    if old is not None and {k: old.get(k) for k in ("model", "prompt_hash")} != \
            {k: ident.get(k) for k in ("model", "prompt_hash")}:
        raise ConfigError(f"{meta_path} holds the letters of judge {old.get('model')!r} (prompt "
                          f"{old.get('prompt_hash')}); move {JUDGE_FILE} and {JUDGE_META} away to judge with "
                          f"{ident.get('model')!r}")
    with ExitStack() as stack:
        stack.enter_context(store.lock())  # no run (and no other rejudge) writes this folder meanwhile
        path = judge_path(run_dir)
        _repair(path)
        done = read_judge(run_dir)
        spec = run["benchmark"]["spec"]
        if not Path(spec).is_absolute() and (Path(run_dir) / spec).exists():
            spec = str(Path(run_dir) / spec)
        options = {q.id: list(q.options) for q in load_benchmark(spec).questions}
        todo = [r for r in store.samples() if not r.get("error") and (r["variant"], r["question_id"]) not in done]
        meta = {**(old or {}), **ident, "started_at": (old or {}).get("started_at") or _now(),
                "run_config_hash": run.get("config_hash")}
        meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        progress(f"judging {len(todo)} record(s) of {run_dir} with {ident.get('model')} "
                 f"({len(done)} judged before)")
        stats = {"judged": 0, "failed": 0, "calls": 0, "fallbacks": 0}

        async def main() -> None:
            sem = asyncio.Semaphore(max(1, concurrency))

            async def one(rec: dict) -> None:
                async with sem:
                    try:
                        line = await judge_record(llm, rec, options.get(rec["question_id"]) or list("ABCDE"))
                    except Exception as e:  # noqa: BLE001  (a judge call that outlived its retries: retried next time)
                        from ragsafe.llm.errors import RequestFailed

                        if not isinstance(e, RequestFailed):
                            raise
                        stats["failed"] += 1
                        return
                    await asyncio.to_thread(_append, path, [line])
                    stats["judged"] += 1
                    stats["calls"] += line["calls"]
                    stats["fallbacks"] += line["fallbacks"]

            try:
                await asyncio.gather(*(one(r) for r in todo))
            finally:
                await llm.aclose()

        asyncio.run(main())
        meta["finished_at"] = _now() if not stats["failed"] else None
        meta["capabilities"] = dict(llm.gate.caps)
        meta_path.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    progress(f"judged {stats['judged']} record(s) ({stats['calls']} judge calls, {stats['fallbacks']} fallbacks"
             f"{', ' + str(stats['failed']) + ' failed: run again to retry them' if stats['failed'] else ''}); "
             f"letters in {path}")
    return stats


def rejudge_run(run_dir: str | Path, *, base_url: str | None = None, model: str | None = None,
                api_key_env: str | None = None, concurrency: int = 4, cache: str = "use", timeout: float = 120.0,
                max_retries: int = 4, progress: Callable[[str], None] = print) -> dict[str, Any]:
    """:func:`rejudge` with its judge endpoint: ``base_url`` "local" starts the embedded server.

    Args:
        run_dir: the run folder to judge.
        base_url: the judge's OpenAI-compatible URL, or "local"; default: the run's own endpoint.
        model: the judge model (an embedded model name with "local"); default: the run's model.
        api_key_env: environment variable holding the judge endpoint's key.
        cache: "use", "refresh" or "off" (the response cache, as for runs).

    Example:
        >>> rejudge_run("runs/run-0123", base_url="local", model="qwen2.5-coder-1.5b")  # doctest: +SKIP
    """
    from ragsafe import config as cfgmod
    from ragsafe.llm.cache import open_cache
    from ragsafe.llm.client import LLM

    run = RunStore(run_dir).read_run()
    ep = run.get("endpoint") or {}
    base_url = base_url or ("local" if ep.get("kind") == "local" else ep.get("base_url"))
    model = model or ep.get("model")
    if not base_url or not model:
        raise ConfigError(f"{run_dir}: name the judge with --judge-base-url URL|local and --judge-model NAME")
    with ExitStack() as stack:
        if base_url == "local":
            from ragsafe.llm.server import LocalServer

            progress(f"starting the embedded llama.cpp server with {model} for the judge ...")
            url = stack.enter_context(LocalServer(model)).base_url
        else:
            url = base_url
        llm = LLM(url, model, api_key=cfgmod.read_api_key(api_key_env), timeout=timeout, max_retries=max_retries,
                  seed=0, cache=open_cache(cache), cache_read=cache != "refresh")
        asyncio.run(llm.check())
        return rejudge(run_dir, llm, judge_id={"model": model, "endpoint": "local" if base_url == "local" else "remote",
                                               "base_url": None if base_url == "local" else base_url},
                       concurrency=concurrency, progress=progress)
