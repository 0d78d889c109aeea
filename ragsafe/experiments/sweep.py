"""Sweeps: endpoints x graph variants x seeds from one YAML or TOML file.

A sweep runs one run folder per (endpoint, seed), each holding every graph variant, so the paired
comparisons of a run (every variant against the closed-book floor and the clean-evidence ceiling)
hold inside each folder. A folder is named by the hash of its resolved config, the same as
``ragsafe run`` with the same settings would give, so a sweep resumes where it stopped.

Example (``sweep.yaml``)::

    name: k-ablation
    benchmark: demo
    split: test
    seeds: [0, 1]
    endpoints:
      - name: qwen
        model: qwen2.5-coder-1.5b
        base_url: http://127.0.0.1:8000/v1
        replicas: [http://127.0.0.1:8001/v1]   # spread load over these too
        concurrency: 8                          # requests in flight per URL
    graphs:
      - closed_book
      - clean_evidence
      - name: standard_rag
        params: {query: question}
        grid: {k: [1, 5, 10]}                   # one variant per value
    self_consistency:                           # wrap graphs in self_consistency
      over: [closed_book, "standard_rag[k=5]"]
      n: 20
      temperature: 0.7

The same in TOML uses ``[[endpoints]]`` and ``[[graphs]]`` tables. Files load with
``yaml.safe_load`` / ``tomllib``; a bad file fails with the file, the key and the fix.
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
import hashlib
import itertools
import json
from pathlib import Path
from typing import Any, Callable

from ragsafe.config import AnswerPolicy, ConfigError, EndpointConfig, answer_budget
from ragsafe.defaults import DEFAULT_MODEL
from ragsafe.experiments.config import RunConfig
from ragsafe.experiments.endpoints import Endpoint
from ragsafe.experiments.plan import RunJob, prepare
from ragsafe.experiments.procs import execute_runs
from ragsafe.experiments.progress import log, pick_reporter
from ragsafe.experiments.shards import Shard
from ragsafe.experiments.sweep_schema import (
    EndpointSpec,
    GraphTable,
    JudgeSpec,
    SelfConsistencySpec,
    SweepError,
    SweepFile,
    describe,
    parse_sweep_file,
)
from ragsafe.graphs import graphs
from ragsafe.graphs.self_consistency import NAME as SC_GRAPH
from ragsafe.params import ParamSyntaxError, format_nested, format_value, format_variant, parse_variant
from ragsafe.plugins import PluginError, load_plugin
from ragsafe.retrievers.registry import BUILTIN as BUILTIN_RETRIEVERS
from ragsafe.retrievers.registry import check_retriever

TOP_KEYS = describe(SweepFile)
ENDPOINT_KEYS = describe(EndpointSpec)
GRAPH_KEYS = describe(GraphTable)
SC_KEYS = describe(SelfConsistencySpec)


@dataclasses.dataclass
class Sweep:
    """A loaded, validated sweep file."""

    path: Path
    name: str
    endpoints: list[Endpoint]
    graph_specs: list[str]
    seeds: list[int]
    base: dict[str, Any]
    """RunConfig fields shared by every run of the sweep."""
    file_sha256: str
    graph_modules: list[str] = dataclasses.field(default_factory=list)
    parser: str = "strict"
    """strict | judge | both: which letters the sweep's summaries score (judge: re-read by an LLM judge)."""
    judge: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The judge's model, base_url, api_key_env and concurrency (None: the run's own endpoint)."""

    def configs(self, *, cache: str = "use", retry_errors: bool = False, allow_errors: bool | None = None,
                out: str | None = None, embedder: Any = None) -> list[tuple[Endpoint, RunConfig]]:
        """One (endpoint, RunConfig) per endpoint and seed (``embedder``: overrides the file's)."""
        out_cfgs = []
        for ep, seed in itertools.product(self.endpoints, self.seeds):
            policy = dataclasses.replace(ep.policy, seed=seed)
            base = dict(self.base)
            if embedder is not None:
                base["embedder"] = embedder
            if allow_errors is not None:
                base["allow_errors"] = allow_errors
            if out is not None:
                base["out"] = out
            cfg = RunConfig(graphs=list(self.graph_specs), endpoint=ep.config, answer=policy, concurrency=ep.workers,
                            cache=cache, retry_errors=retry_errors, **base)
            out_cfgs.append((dataclasses.replace(ep, policy=policy), cfg))
        return out_cfgs

    def jobs(self, *, shard: Shard | None = None, **kw) -> list[RunJob]:
        many = len(self.endpoints) > 1 or len(self.seeds) > 1
        jobs = []
        for ep, cfg in self.configs(**kw):
            prefix = f"{ep.name}/seed{ep.policy.seed}/" if many else ""
            jobs.append(prepare(cfg, endpoint=ep, shard=shard, extra={
                "cell_prefix": prefix, "plugins": list(self.graph_modules),
                "record": {"sweep": {"name": self.name, "file": str(self.path), "file_sha256": self.file_sha256,
                                     "endpoint": ep.name, "graph_modules": self.graph_modules}}}))
        return jobs


# -- loading ---------------------------------------------------------------------------------------

def load_sweep(path: str | Path, overrides: dict[str, Any] | None = None) -> Sweep:
    """Read and validate a sweep file (.yaml/.yml or .toml).

    ``overrides`` replace top-level keys before validation (``ragsafe sweep FILE --set benchmark=demo``),
    e.g. to dry-run a sweep written for files this machine does not have; they enter the sweep's hash.

    Example:
        >>> sweep = load_sweep("sweep.yaml")  # doctest: +SKIP
        >>> [cfg.answer.seed for _, cfg in sweep.configs()]  # doctest: +SKIP
    """
    path = Path(path)
    if not path.exists():
        raise SweepError(f"{path}: no such sweep file")
    raw = path.read_bytes()
    data = _parse(path, raw)
    if overrides:
        data.update(overrides)
        raw += b"\n# --set " + json.dumps(overrides, sort_keys=True).encode()
    return _validate(path, data, hashlib.sha256(raw).hexdigest())


def _parse(path: Path, raw: bytes) -> dict:
    suffix = path.suffix.lower()
    if suffix == ".toml":
        try:
            import tomllib
        except ImportError:  # Python 3.10
            import tomli as tomllib  # type: ignore[no-redef]
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise SweepError(f"{path}: not valid TOML: {e}. Fix the syntax at that place") from None
    elif suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(raw.decode("utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise SweepError(f"{path}: not valid YAML: {e}. Fix the syntax at that place") from None
    else:
        raise SweepError(f"{path}: unknown sweep file type {suffix!r}; name it .yaml, .yml or .toml")
    if not isinstance(data, dict):
        raise SweepError(f"{path}: the top level must be a table of keys (benchmark, endpoints, graphs, ...), "
                         f"not {type(data).__name__}")
    return data


def _fail(path: Path, key: str, problem: str, fix: str) -> SweepError:
    return SweepError(f"{path}: {key}: {problem}. Fix: {fix}")


def _validate(path: Path, data: dict, sha: str) -> Sweep:
    """The file's shape is checked by :func:`parse_sweep_file` (keys, types, bounds); what follows checks
    what needs the registries and the relations between keys."""
    f = parse_sweep_file(path, data)
    modules = []
    for key, mods in (("graph_modules", f.graph_modules), ("plugins", f.plugins)):
        for mod in mods:
            if mod.endswith(".py") and not Path(mod).exists() and (path.parent / mod).exists():
                mod = str(path.parent / mod)  # a file named relative to the sweep file
            try:
                load_plugin(mod, flag=key)
            except PluginError as e:
                raise _fail(path, key, f"cannot load {mod!r} ({e})",
                            "give an importable module or an existing .py file") from None
            modules.append(mod)
    # loaded here, once per process: the runs' configs do not load them again
    from ragsafe.corpora.benchmark import benchmarks
    from ragsafe.corpora.documents import corpora

    if not Path(f.benchmark).exists() and f.benchmark not in benchmarks:
        raise _fail(path, "benchmark", f"{f.benchmark!r} is neither a registered benchmark nor an existing file",
                    f"use one of {', '.join(benchmarks.names())}, or a path to a .jsonl file")
    if not Path(f.corpus).exists() and f.corpus not in corpora:
        raise _fail(path, "corpus", f"{f.corpus!r} is neither a registered corpus nor an existing folder or file",
                    f"use one of {', '.join(corpora.names())}, a folder of .md/.txt files, or a .jsonl dump")
    if f.chunk.overlap >= f.chunk.size:
        raise _fail(path, "chunk.overlap", f"overlap {f.chunk.overlap} must be below size {f.chunk.size}",
                    "lower chunk.overlap")
    if len(set(f.seeds)) != len(f.seeds):
        raise _fail(path, "seeds", f"seed listed twice in {f.seeds}", "list each seed once")
    base: dict[str, Any] = {
        "graph_modules": [], "benchmark": f.benchmark, "split": f.split, "corpus": f.corpus,
        "chunk_size": f.chunk.size, "chunk_overlap": f.chunk.overlap, "chroma_path": f.chroma.path or None,
        "chroma_url": f.chroma.url or None, "out": f.out, "skip_invalid": f.skip_invalid,
        "allow_errors": f.allow_errors, "bootstrap_B": f.bootstrap.B, "bootstrap_seed": f.bootstrap.seed}
    if f.procs != 1:
        from ragsafe.experiments.procs import parse_procs

        try:
            base["procs"] = parse_procs(f.procs)
        except ConfigError:
            raise _fail(path, "procs", f"expected a whole number of worker processes >= 1 or auto, got {f.procs!r}",
                        "write e.g. procs: 2, or procs: auto (one per core)") from None
    if f.limit is not None:
        base["limit"] = f.limit
    if f.chunk.tokenizer != "embedder":
        base["chunk_tokenizer"] = f.chunk.tokenizer
    if f.embedder is not None:
        from ragsafe.retrievers.embedders import EmbedderConfig

        try:
            base["embedder"] = EmbedderConfig.from_value(f.embedder)
        except ConfigError as e:
            raise _fail(path, "embedder", str(e), "write embedder: all-MiniLM-L6-v2, a model folder, or a table "
                        "{name: FOLDER, device: cuda}") from None
    if f.retriever is not None:
        try:
            check_retriever(f.retriever)
        except (ConfigError, KeyError) as e:  # KeyError: an unknown name (the message lists the valid ones)
            raise _fail(path, "retriever", str(e), f"use one of {', '.join(BUILTIN_RETRIEVERS)}, a plugin's, "
                                                   "or module:factory") from None
        base["retriever"] = f.retriever
    endpoints = _endpoints(path, f.endpoints)
    specs = _graphs(path, f) + _self_consistency(path, f.self_consistency)
    if not specs:
        raise _fail(path, "graphs", "no graph given",
                    f"add graphs: [closed_book, standard_rag] (valid: {', '.join(graphs.names())})")
    # resolve once now so a bad param fails here, naming the file
    from ragsafe.experiments.variants import resolve_variants
    try:
        resolve_variants(specs, [])
    except ConfigError as e:
        raise _fail(path, "graphs", str(e), "each variant (name + params) may appear once") from None
    if f.parser == "strict" and f.judge != JudgeSpec():
        raise _fail(path, "judge", "a judge is set but parser is strict, so it would never be asked",
                    "add parser: judge (score the judge's letters) or parser: both, or remove judge:")
    return Sweep(path=path, name=str(f.name or path.stem), endpoints=endpoints, graph_specs=specs,
                 seeds=f.seeds, base=base, file_sha256=sha, graph_modules=modules, parser=f.parser,
                 judge=f.judge.model_dump())


def _endpoints(path: Path, specs: list[EndpointSpec]) -> list[Endpoint]:
    if not specs:
        raise _fail(path, "endpoints", "missing", "add endpoints: [{model: MODEL_ID, base_url: http://127.0.0.1:8000/v1, "
                                                  "concurrency: 8}] (or base_url: local for the embedded server)")
    out, names = [], set()
    for i, e in enumerate(specs):
        where = f"endpoints[{i}]"
        if e.base_url != "local" and not e.base_url.startswith(("http://", "https://")):
            raise _fail(path, f"{where}.base_url", f"{e.base_url!r} is not an http(s) URL",
                        "write e.g. http://127.0.0.1:8000/v1, or local for the embedded server")
        if e.base_url != "local" and e.model is None:
            raise _fail(path, f"{where}.model", "missing",
                        "name the model id the server serves, e.g. model: qwen2.5-7b-instruct")
        for j, r in enumerate(e.replicas):
            if not r.startswith(("http://", "https://")):
                raise _fail(path, f"{where}.replicas[{j}]", f"{r!r} is not an http(s) URL",
                            "write e.g. http://127.0.0.1:8001/v1")
        if e.replicas and e.base_url == "local":
            raise _fail(path, f"{where}.replicas", "replicas need a remote base_url (local starts one embedded server)",
                        "set base_url to one of the servers and list the others under replicas")
        model = e.model or DEFAULT_MODEL
        name = e.name or model
        if name in names:
            raise _fail(path, f"{where}.name", f"endpoint name {name!r} is used twice", "give each endpoint its own name: key")
        names.add(name)
        kw = {k: v for k, v in (("api_key_env", e.api_key_env), ("timeout", e.timeout), ("max_retries", e.max_retries),
                                 ("context_window", e.context_window)) if v is not None}
        answer = {k: v for k, v in (("answer_mode", e.answer_mode), ("max_tokens", e.max_tokens)) if v is not None}
        if e.reasoning is not None:
            answer["reasoning"] = e.reasoning
            answer["max_tokens"] = answer_budget(e.reasoning, e.max_tokens)
        workers = e.workers or 2 * e.concurrency * (1 + len(e.replicas))
        out.append(Endpoint(name=name, config=EndpointConfig(base_url=e.base_url, model=model, **kw),
                            policy=AnswerPolicy(**answer), replicas=tuple(e.replicas), concurrency=e.concurrency,
                            workers=workers, backoff_initial=e.backoff_initial,
                            backoff_max=max(e.backoff_initial, e.backoff_max)))
    return out


def _value(path: Path, v: Any, key: str) -> str:
    if isinstance(v, str) and any(ch in v for ch in ",[]="):
        raise _fail(path, key, f"value {v!r} holds one of , [ ] = which variant labels use",
                    "choose a value without them (self_consistency inner params use ';' between pairs)")
    try:
        return format_value(v)
    except ParamSyntaxError:
        raise _fail(path, key, f"expected a string, number or boolean, got {v!r}", "write a single value") from None


def _graph_name(path: Path, name: str, key: str) -> str:
    if name not in graphs:
        near = difflib.get_close_matches(name, graphs.names(), n=1)
        raise _fail(path, key, f"unknown graph {name!r}", (f"did you mean {near[0]!r}? " if near else "")
                    + f"valid graphs: {', '.join(graphs.names())}")
    return name


def _check_params(path: Path, name: str, params: dict[str, str], key: str) -> None:
    from ragsafe.experiments.variants import make_params

    try:
        make_params(graphs.get(name), params)
    except ConfigError as e:
        raise _fail(path, key, str(e), f"see `ragsafe graphs show {name}` for its params and their types") from None


def _split_inline(path: Path, text: str, where: str) -> tuple[str, dict[str, str]]:
    try:
        name, params = parse_variant(text)
    except ParamSyntaxError as e:
        raise _fail(path, where, e.problem, e.fix) from None
    return _graph_name(path, name, where), params


def _graphs(path: Path, f: SweepFile) -> list[str]:
    specs: list[str] = []
    for i, g in enumerate(f.graphs):
        where = f"graphs[{i}]"
        if isinstance(g, str):
            name, inline = _split_inline(path, g, where)
            _check_params(path, name, inline, where)
            specs.append(format_variant(name, inline))
            continue
        name = _graph_name(path, g.name, f"{where}.name")
        params = {k: _value(path, v, f"{where}.params.{k}") for k, v in g.params.items()}
        axes = []
        for k, vals in g.grid.items():
            if k in params:
                raise _fail(path, f"{where}.grid.{k}", f"{k} is also set under params", f"keep {k} in one of params or grid")
            axes.append([(k, _value(path, v, f"{where}.grid.{k}")) for v in vals])
        for combo in itertools.product(*axes) if axes else [()]:
            p = {**params, **dict(combo)}
            _check_params(path, name, p, where)
            specs.append(format_variant(name, dict(sorted(p.items()))))
    return specs


def _self_consistency(path: Path, sc: SelfConsistencySpec | None) -> list[str]:
    """Variants of the ``self_consistency:`` section (named after its graph): that graph over each of ``over``."""
    if sc is None:
        return []
    if SC_GRAPH not in graphs:
        raise _fail(path, SC_GRAPH, f"no graph named {SC_GRAPH} is registered", "remove the section")
    spec = graphs.get(SC_GRAPH)
    inner_key, nested_key = spec.wraps.graph, spec.wraps.params
    if sc.inner_params is not None:
        raise _fail(path, f"{SC_GRAPH}.{nested_key}", "inner params go with each wrapped graph",
                    "write over: ['standard_rag[k=5]'] instead")
    if not sc.over:
        raise _fail(path, f"{SC_GRAPH}.over", "missing", "list the graphs to wrap, e.g. over: [closed_book]")
    axes = []
    for k in ("n", "temperature", "resample"):
        vals = getattr(sc, k)
        if vals is not None:
            if not vals:
                raise _fail(path, f"{SC_GRAPH}.{k}", "empty list", f"give at least one value for {k}")
            axes.append([(k, _value(path, v, f"{SC_GRAPH}.{k}")) for v in vals])
    specs = []
    for i, inner in enumerate(sc.over):
        where = f"{SC_GRAPH}.over[{i}]"
        name, inline = _split_inline(path, inner, where)
        if name == SC_GRAPH:
            raise _fail(path, where, f"{SC_GRAPH} cannot wrap itself", "wrap another graph")
        _check_params(path, name, inline, where)
        try:
            nested = {nested_key: format_nested(inline)} if inline else {}
        except ParamSyntaxError as e:
            raise _fail(path, where, e.problem, e.fix) from None
        for combo in itertools.product(*axes) if axes else [()]:
            p = {inner_key: name, **nested, **dict(combo)}
            _check_params(path, SC_GRAPH, p, where)
            specs.append(format_variant(SC_GRAPH, dict(sorted(p.items()))))
    return specs


# -- planning ------------------------------------------------------------------------------------

def expected_calls(spec: Any, params: Any, n_options: int | None = None) -> tuple[int, int] | None:
    """(fewest, most) LLM calls one question makes in this graph; None when the graph does not say.

    A graph tells by a method ``expected_llm_calls(n_options=None)`` on its params returning an int
    or a (low, high) pair (see :meth:`GraphSpec.expected_calls`). The bounds hold for any LLM
    replies (unparseable ones included) when every search returns the hits it asks for. Where calls
    are per option, ``n_options`` gives the question's option count; None: any count within the
    benchmark's limits. A method without an ``n_options`` parameter (an older user graph) is called
    without it.
    """
    return spec.expected_calls(params, n_options)


def dry_run(jobs: list[RunJob], *, retry_errors: bool = False, judge: bool = False) -> tuple[list[dict], dict]:
    """Cells with their questions, work left and expected LLM calls; nothing is started or written.

    A cell's calls are summed over its questions to do, grouped by their number of options (graphs
    that call the LLM per option count each question's own options). ``judge``: also the judge's
    calls, one per stored raw output (the greedy answer, and each self-consistency sample).
    """
    rows, lo_sum, hi_sum, unknown, judge_sum = [], 0, 0, 0, 0
    for job in jobs:
        pend = job.pending(retry_errors)
        for v in job.plan["variants"]:
            todo = len(pend[v.label])
            by_options = collections.Counter(len(q.options) for q in pend[v.label])
            calls: tuple[int, int] | None = (0, 0)
            for n, count in sorted(by_options.items()):
                got = expected_calls(v.spec, v.params, n_options=n)
                if got is None:
                    calls = None
                    break
                calls = (calls[0] + got[0] * count, calls[1] + got[1] * count)
            if not by_options and expected_calls(v.spec, v.params) is None:
                calls = None
            row = {"run": job.run_dir.name, "endpoint": job.endpoint.name, "model": job.endpoint.config.model,
                   "seed": job.cfg.answer.seed, "variant": v.label, "questions": len(job.questions),
                   "done": len(job.questions) - todo, "todo": todo, "calls": calls}
            if judge:
                row["judge_calls"] = todo * (1 + (int(v.params.n) if v.spec.name == SC_GRAPH else 0))
                judge_sum += row["judge_calls"]
            if calls is None:
                unknown += todo
            else:
                lo_sum += calls[0]
                hi_sum += calls[1]
            rows.append(row)
    totals = {"cells": len(rows), "todo": sum(r["todo"] for r in rows), "calls_min": lo_sum, "calls_max": hi_sum,
              "questions_with_unknown_calls": unknown}
    if judge:
        totals["judge_calls"] = judge_sum
    return rows, totals


def format_dry_run(sweep: Sweep, rows: list[dict], totals: dict, shard: Shard | None) -> str:
    head = ["run", "endpoint", "seed", "variant", "questions", "done", "to do", "LLM calls"]
    body = []
    for r in rows:
        calls = "?" if r["calls"] is None else (str(r["calls"][0]) if r["calls"][0] == r["calls"][1]
                                                else f"{r['calls'][0]}-{r['calls'][1]}")
        body.append([r["run"], r["endpoint"], str(r["seed"]), r["variant"], str(r["questions"]), str(r["done"]),
                     str(r["todo"]), calls])
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    lines = [f"sweep {sweep.name} ({sweep.path}): {len(sweep.endpoints)} endpoint(s) x {len(sweep.seeds)} seed(s) x "
             f"{len(sweep.graph_specs)} variant(s) = {totals['cells']} cells"
             + (f"; shard {shard.label}" if shard else "")]
    lines += ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(x.ljust(w) for x, w in zip(row, widths)) for row in body]
    calls = (str(totals["calls_min"]) if totals["calls_min"] == totals["calls_max"]
             else f"{totals['calls_min']}-{totals['calls_max']}")
    note = (f" (+ {totals['questions_with_unknown_calls']} question(s) of graphs that do not declare their calls)"
            if totals["questions_with_unknown_calls"] else "")
    lines.append(f"total: {totals['todo']} (cell, question) pairs to compute; LLM calls expected: {calls}{note}; "
                 f"calls already in the response cache are not made")
    if "judge_calls" in totals:
        who = sweep.judge.get("model") or "each run's model"
        lines.append(f"judge ({who}, parser {sweep.parser}): {totals['judge_calls']} calls expected, one per stored "
                     f"raw output (greedy answers and self-consistency samples)")
    return "\n".join(lines)


# -- running -------------------------------------------------------------------------------------

def run_sweep(sweep: Sweep, *, shard: Shard | None = None, cache: str = "use", retry_errors: bool = False,
              allow_errors: bool | None = None, out: str | None = None,
              progress: Callable[[str], None] = log, embedder: Any = None, plugins: list[str] = ()) -> list[Path]:
    """Run every (endpoint, seed) of ``sweep`` in one event loop (``procs:`` > 1: over that many worker
    processes, which load ``plugins`` too); return the run folders.

    Example:
        >>> run_sweep(load_sweep("sweep.yaml"), shard=Shard.parse("1/4"))  # doctest: +SKIP
    """
    jobs = sweep.jobs(shard=shard, cache=cache, retry_errors=retry_errors, allow_errors=allow_errors, out=out,
                      embedder=embedder)
    for job in jobs:
        job.extra["plugins"] = [*job.extra.get("plugins", []), *plugins]
    dirs = execute_runs(jobs, cache=cache, retry_errors=retry_errors, progress=progress,
                        reporter=pick_reporter(progress), procs=max((j.cfg.procs for j in jobs), default=1))
    if sweep.parser != "strict":
        judge_runs(sweep, dirs, cache=cache, progress=progress)
    from ragsafe.experiments.index import RunIndex

    RunIndex(Path(out or sweep.base["out"])).refresh()
    return dirs


def judge_runs(sweep: Sweep, dirs: list[Path], *, cache: str = "use", progress: Callable[[str], None] = log) -> None:
    """The LLM judge re-reads every run folder's raw outputs, then each is scored with the sweep's
    letters (``summary.judge.json`` for parser judge; ``summary.json`` gains the agreement for both).
    A judge that resumes finds the questions it judged already."""
    from ragsafe.evals.score import score_run_dir
    from ragsafe.experiments.rejudge import rejudge_run

    j = sweep.judge
    for d in dirs:
        progress(f"judge: re-reading the raw outputs of {d.name}")
        rejudge_run(d, base_url=j.get("base_url"), model=j.get("model"), api_key_env=j.get("api_key_env"),
                    concurrency=j.get("concurrency") or 4, cache=cache, progress=progress)
        score_run_dir(d, letters="judge" if sweep.parser == "judge" else "strict")


# -- merging shards --------------------------------------------------------------------------------


