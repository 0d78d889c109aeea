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
import functools
import hashlib
import inspect
import itertools
import json
from pathlib import Path
from typing import Any, Callable

from ragsafe.config import AnswerPolicy, ConfigError, EndpointConfig
from ragsafe.defaults import BOOTSTRAP_B, BOOTSTRAP_SEED, CHUNK_OVERLAP, CHUNK_SIZE, DEFAULT_MODEL
from ragsafe.experiments.config import RunConfig
from ragsafe.experiments.endpoints import Endpoint
from ragsafe.experiments.execute import execute_runs
from ragsafe.experiments.plan import RunJob, prepare
from ragsafe.experiments.progress import log, pick_reporter
from ragsafe.experiments.shards import Shard
from ragsafe.graphs import graphs, load_graph_module
from ragsafe.params import ParamSyntaxError, format_nested, format_value, format_variant, parse_nested, parse_variant

TOP_KEYS = {
    "name": "a label for this sweep (default: the file name)",
    "benchmark": "registered benchmark or path to a .jsonl file (default: demo)",
    "split": "dev or test (default: all questions)",
    "limit": "first N questions in id order",
    "corpus": "registered corpus, folder of .md/.txt, or .jsonl dump (default: demo)",
    "chunk": f"{{size: {CHUNK_SIZE}, overlap: {CHUNK_OVERLAP}}}",
    "chroma": "{path: FOLDER} or {url: http://127.0.0.1:8000}",
    "seeds": "list of sampling seeds, e.g. [0, 1, 2] (default: [0])",
    "endpoints": "list of endpoints (model, base_url, replicas, concurrency, ...)",
    "graphs": "list of graph names, 'name[k=v]' strings, or {name, params, grid} tables",
    "self_consistency": "{over: [graphs], n: 20, temperature: 0.7, resample: answer}",
    "out": "folder that holds the run folders (default: runs)",
    "skip_invalid": "true to run without the benchmark's invalid records",
    "allow_errors": "true to report metrics for variants with error samples",
    "graph_modules": "list of modules or .py files with your own @graph factories",
    "bootstrap": f"{{B: {BOOTSTRAP_B}, seed: {BOOTSTRAP_SEED}}}",
}
ENDPOINT_KEYS = {
    "name": "a label (default: the model id)",
    "model": "model id the server serves (for base_url local: an embedded model)",
    "base_url": "OpenAI-compatible base URL, or local for the embedded server (default: local)",
    "replicas": "further base URLs serving the same model",
    "concurrency": "requests in flight per URL (default: 4)",
    "workers": "questions in flight (default: 2 x concurrency x URLs)",
    "api_key_env": "name of the environment variable that holds the key",
    "timeout": "per-request timeout in seconds",
    "max_retries": "retries on connection errors, timeouts, 429 and 5xx",
    "backoff_initial": "first backoff wait in seconds (default: 0.5)",
    "backoff_max": "longest backoff wait in seconds (default: 20)",
    "answer_mode": "generate or letter_logprobs",
    "max_tokens": "answer budget in tokens",
    "context_window": "model context size in tokens",
}
GRAPH_KEYS = {"name": "registered graph name", "params": "{param: value}", "grid": "{param: [v1, v2]}"}
SC_KEYS = {"over": "list of graphs to wrap", "n": "samples (or a list)", "temperature": "float (or a list)",
           "resample": "answer or graph (or a list)", "inner_params": "not here: write 'graph[k=v]' in over"}

FIXED_CALLS = {"closed_book": 1, "clean_evidence": 1, "conflict_evidence": 1, "standard_rag": 1,
               "precomputed_report": 1}
"""LLM calls per question of the built-in single-call graphs (others declare their own)."""


class SweepError(ConfigError):
    """A sweep file problem: names the file, the key and the fix."""


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

    def configs(self, *, cache: str = "use", retry_errors: bool = False, allow_errors: bool | None = None,
                out: str | None = None) -> list[tuple[Endpoint, RunConfig]]:
        """One (endpoint, RunConfig) per endpoint and seed."""
        out_cfgs = []
        for ep, seed in itertools.product(self.endpoints, self.seeds):
            policy = dataclasses.replace(ep.policy, seed=seed)
            base = dict(self.base)
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
                "cell_prefix": prefix,
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


class _Checker:
    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, problem: str, fix: str) -> SweepError:
        return SweepError(f"{self.path}: {key}: {problem}. Fix: {fix}")

    def keys(self, table: dict, allowed: dict[str, str], where: str) -> None:
        for k in table:
            if k not in allowed:
                near = difflib.get_close_matches(str(k), list(allowed), n=1)
                hint = f"did you mean {near[0]!r}?" if near else f"valid keys: {', '.join(allowed)}"
                if k == "api_key":
                    raise self.fail(f"{where}{k}", "an API key never goes into a sweep file",
                                    "export the key in an environment variable and name it with api_key_env")
                raise self.fail(f"{where}{k}", "unknown key", f"remove it or rename it; {hint}")

    def table(self, value: Any, key: str, example: str) -> dict:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a table, got {_show(value)}", f"write it as {example}")
        return value

    def string(self, value: Any, key: str, example: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"expected a non-empty string, got {_show(value)}", f"write e.g. {key.split('.')[-1]}: {example}")
        return value.strip()

    def integer(self, value: Any, key: str, *, low: int, example: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise self.fail(key, f"expected an integer >= {low}, got {_show(value)}",
                            f"write e.g. {key.split('.')[-1].split('[')[0]}: {example}")
        return value

    def number(self, value: Any, key: str, *, low: float, example: float, strict: bool = False) -> float:
        ok = not isinstance(value, bool) and isinstance(value, (int, float)) and (value > low if strict else value >= low)
        if not ok:
            raise self.fail(key, f"expected a number {'>' if strict else '>='} {low}, got {_show(value)}",
                            f"write e.g. {key.split('.')[-1]}: {example}")
        return float(value)

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {_show(value)}", f"write {key.split('.')[-1]}: true")
        return value

    def strings(self, value: Any, key: str, example: str) -> list[str]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(x, str) and x.strip() for x in value):
            raise self.fail(key, f"expected a list of strings, got {_show(value)}", f"write e.g. {example}")
        return [x.strip() for x in value]


def _show(v: Any) -> str:
    text = json.dumps(v, default=str)
    return (text[:60] + "...") if len(text) > 60 else text


def _validate(path: Path, data: dict, sha: str) -> Sweep:
    c = _Checker(path)
    c.keys(data, TOP_KEYS, "")
    modules = []
    for mod in c.strings(data.get("graph_modules", []), "graph_modules", "graph_modules: [my_graphs.py]"):
        if mod.endswith(".py") and not Path(mod).exists() and (path.parent / mod).exists():
            mod = str(path.parent / mod)  # a file named relative to the sweep file
        try:
            load_graph_module(mod)
        except (ImportError, FileNotFoundError, ValueError) as e:
            raise c.fail("graph_modules", f"cannot load {mod!r} ({e})",
                         "give an importable module or an existing .py file") from None
        modules.append(mod)
    # loaded here, once per process: the runs' configs do not load them again
    base: dict[str, Any] = {"graph_modules": []}
    base["benchmark"] = c.string(data.get("benchmark", "demo"), "benchmark", "demo")
    from ragsafe.corpora.benchmark import benchmarks
    if not Path(base["benchmark"]).exists() and base["benchmark"] not in benchmarks:
        raise c.fail("benchmark", f"{base['benchmark']!r} is neither a registered benchmark nor an existing file",
                     f"use one of {', '.join(benchmarks.names())}, or a path to a .jsonl file")
    split = data.get("split")
    if split is not None and split not in ("dev", "test"):
        raise c.fail("split", f"expected dev or test, got {_show(split)}", "write split: test, or remove the key")
    base["split"] = split
    if data.get("limit") is not None:
        base["limit"] = c.integer(data["limit"], "limit", low=1, example=50)
    base["corpus"] = c.string(data.get("corpus", "demo"), "corpus", "demo")
    from ragsafe.corpora.documents import corpora

    if not Path(base["corpus"]).exists() and base["corpus"] not in corpora:
        raise c.fail("corpus", f"{base['corpus']!r} is neither a registered corpus nor an existing folder or file",
                     f"use one of {', '.join(corpora.names())}, a folder of .md/.txt files, or a .jsonl dump")
    chunk = c.table(data.get("chunk", {}), "chunk", f"chunk: {TOP_KEYS['chunk']}")
    c.keys(chunk, {"size": "", "overlap": ""}, "chunk.")
    base["chunk_size"] = c.integer(chunk.get("size", CHUNK_SIZE), "chunk.size", low=1, example=CHUNK_SIZE)
    base["chunk_overlap"] = c.integer(chunk.get("overlap", CHUNK_OVERLAP), "chunk.overlap", low=0, example=CHUNK_OVERLAP)
    if base["chunk_overlap"] >= base["chunk_size"]:
        raise c.fail("chunk.overlap", f"overlap {base['chunk_overlap']} must be below size {base['chunk_size']}",
                     "lower chunk.overlap")
    chroma = c.table(data.get("chroma", {}), "chroma", "chroma: {url: http://127.0.0.1:8000}")
    c.keys(chroma, {"path": "", "url": ""}, "chroma.")
    base["chroma_path"] = chroma.get("path") and c.string(chroma["path"], "chroma.path", "/data/chroma")
    base["chroma_url"] = chroma.get("url") and c.string(chroma["url"], "chroma.url", "http://127.0.0.1:8000")
    base["out"] = c.string(data.get("out", "runs"), "out", "runs")
    base["skip_invalid"] = c.boolean(data.get("skip_invalid", False), "skip_invalid")
    base["allow_errors"] = c.boolean(data.get("allow_errors", False), "allow_errors")
    boot = c.table(data.get("bootstrap", {}), "bootstrap", f"bootstrap: {TOP_KEYS['bootstrap']}")
    c.keys(boot, {"B": "", "seed": ""}, "bootstrap.")
    base["bootstrap_B"] = c.integer(boot.get("B", BOOTSTRAP_B), "bootstrap.B", low=1, example=BOOTSTRAP_B)
    base["bootstrap_seed"] = c.integer(boot.get("seed", BOOTSTRAP_SEED), "bootstrap.seed", low=0, example=BOOTSTRAP_SEED)

    seeds = data.get("seeds", [0])
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if not isinstance(seeds, list) or not seeds:
        raise c.fail("seeds", f"expected a non-empty list of integers, got {_show(seeds)}", "write seeds: [0, 1, 2]")
    seeds = [c.integer(s, f"seeds[{i}]", low=0, example=0) for i, s in enumerate(seeds)]
    if len(set(seeds)) != len(seeds):
        raise c.fail("seeds", f"seed listed twice in {seeds}", "list each seed once")

    endpoints = _endpoints(c, data)
    specs = _graphs(c, data)
    if not specs:
        raise c.fail("graphs", "no graph given", f"add graphs: [closed_book, standard_rag] (valid: {', '.join(graphs.names())})")
    # resolve once now so a bad param fails here, naming the file
    from ragsafe.experiments.variants import resolve_variants
    try:
        resolve_variants(specs, [])
    except ConfigError as e:
        raise c.fail("graphs", str(e), "each variant (name + params) may appear once") from None
    return Sweep(path=path, name=str(data.get("name") or path.stem), endpoints=endpoints, graph_specs=specs,
                 seeds=seeds, base=base, file_sha256=sha, graph_modules=modules)


def _endpoints(c: _Checker, data: dict) -> list[Endpoint]:

    raw = data.get("endpoints")
    if raw is None:
        raise c.fail("endpoints", "missing", "add endpoints: [{model: MODEL_ID, base_url: http://127.0.0.1:8000/v1, "
                                             "concurrency: 8}] (or base_url: local for the embedded server)")
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise c.fail("endpoints", f"expected a list of tables, got {_show(raw)}", "write endpoints: [{model: ..., base_url: ...}]")
    out, names = [], set()
    for i, e in enumerate(raw):
        where = f"endpoints[{i}]"
        e = c.table(e, where, "{model: MODEL_ID, base_url: http://127.0.0.1:8000/v1}")
        c.keys(e, ENDPOINT_KEYS, f"{where}.")
        base_url = c.string(e.get("base_url", "local"), f"{where}.base_url", "http://127.0.0.1:8000/v1")
        if base_url != "local" and not base_url.startswith(("http://", "https://")):
            raise c.fail(f"{where}.base_url", f"{base_url!r} is not an http(s) URL",
                         "write e.g. http://127.0.0.1:8000/v1, or local for the embedded server")
        if base_url != "local" and "model" not in e:
            raise c.fail(f"{where}.model", "missing", "name the model id the server serves, e.g. model: qwen2.5-7b-instruct")
        model = c.string(e.get("model", DEFAULT_MODEL), f"{where}.model", DEFAULT_MODEL)
        replicas = c.strings(e.get("replicas", []), f"{where}.replicas", "replicas: [http://127.0.0.1:8001/v1]")
        for j, r in enumerate(replicas):
            if not r.startswith(("http://", "https://")):
                raise c.fail(f"{where}.replicas[{j}]", f"{r!r} is not an http(s) URL", "write e.g. http://127.0.0.1:8001/v1")
        if replicas and base_url == "local":
            raise c.fail(f"{where}.replicas", "replicas need a remote base_url (local starts one embedded server)",
                         "set base_url to one of the servers and list the others under replicas")
        concurrency = c.integer(e.get("concurrency", 4), f"{where}.concurrency", low=1, example=8)
        urls = 1 + len(replicas)
        workers = c.integer(e.get("workers", 2 * concurrency * urls), f"{where}.workers", low=1, example=16)
        name = c.string(e.get("name", model), f"{where}.name", "qwen-7b")
        if name in names:
            raise c.fail(f"{where}.name", f"endpoint name {name!r} is used twice",
                         "give each endpoint its own name: key")
        names.add(name)
        kw: dict[str, Any] = {}
        answer: dict[str, Any] = {}
        if "api_key_env" in e:
            kw["api_key_env"] = c.string(e["api_key_env"], f"{where}.api_key_env", "OPENAI_API_KEY")
        if "timeout" in e:
            kw["timeout"] = c.number(e["timeout"], f"{where}.timeout", low=0, example=120, strict=True)
        if "max_retries" in e:
            kw["max_retries"] = c.integer(e["max_retries"], f"{where}.max_retries", low=0, example=4)
        if "answer_mode" in e:
            if e["answer_mode"] not in ("generate", "letter_logprobs"):
                raise c.fail(f"{where}.answer_mode", f"got {_show(e['answer_mode'])}", "write generate or letter_logprobs")
            answer["answer_mode"] = e["answer_mode"]
        if "max_tokens" in e:
            answer["max_tokens"] = c.integer(e["max_tokens"], f"{where}.max_tokens", low=1, example=10)
        if "context_window" in e:
            kw["context_window"] = c.integer(e["context_window"], f"{where}.context_window", low=1, example=4096)
        b0 = c.number(e.get("backoff_initial", 0.5), f"{where}.backoff_initial", low=0, example=0.5)
        b1 = c.number(e.get("backoff_max", 20.0), f"{where}.backoff_max", low=0, example=20)
        cfg = EndpointConfig(base_url=base_url, model=model, **kw)
        out.append(Endpoint(name=name, config=cfg, policy=AnswerPolicy(**answer), replicas=tuple(replicas), concurrency=concurrency,
                            workers=workers, backoff_initial=b0, backoff_max=max(b0, b1)))
    return out


def _value(v: Any, key: str, c: _Checker) -> str:
    if isinstance(v, str) and any(ch in v for ch in ",[]="):
        raise c.fail(key, f"value {v!r} holds one of , [ ] = which variant labels use",
                     "choose a value without them (self_consistency inner params use ';' between pairs)")
    try:
        return format_value(v)
    except ParamSyntaxError:
        raise c.fail(key, f"expected a string, number or boolean, got {_show(v)}", "write a single value") from None


def _graph_name(c: _Checker, name: Any, key: str) -> str:
    name = c.string(name, key, "standard_rag")
    if name not in graphs:
        near = difflib.get_close_matches(name, graphs.names(), n=1)
        raise c.fail(key, f"unknown graph {name!r}", (f"did you mean {near[0]!r}? " if near else "")
                     + f"valid graphs: {', '.join(graphs.names())}")
    return name


def _check_params(c: _Checker, name: str, params: dict[str, str], key: str) -> None:
    try:
        graphs.get(name).make_params(params)
    except ConfigError as e:
        raise c.fail(key, str(e), f"see `ragsafe graphs show {name}` for its params and their types") from None


def _graphs(c: _Checker, data: dict) -> list[str]:
    raw = data.get("graphs", [])
    if isinstance(raw, (str, dict)):
        raw = [raw]
    if not isinstance(raw, list):
        raise c.fail("graphs", f"expected a list, got {_show(raw)}", "write graphs: [closed_book, standard_rag]")
    specs: list[str] = []
    for i, g in enumerate(raw):
        where = f"graphs[{i}]"
        if isinstance(g, str):
            name, inline = _split_inline(c, g, where)
            _check_params(c, name, inline, where)
            specs.append(format_variant(name, inline))
            continue
        g = c.table(g, where, "{name: standard_rag, params: {k: 5}, grid: {k: [1, 5, 10]}}")
        c.keys(g, GRAPH_KEYS, f"{where}.")
        if "name" not in g:
            raise c.fail(f"{where}.name", "missing", "add name: standard_rag (a registered graph)")
        name = _graph_name(c, g["name"], f"{where}.name")
        params = {k: _value(v, f"{where}.params.{k}", c)
                  for k, v in c.table(g.get("params", {}), f"{where}.params", "{k: 5}").items()}
        grid = c.table(g.get("grid", {}), f"{where}.grid", "{k: [1, 5, 10]}")
        axes = []
        for k, vals in grid.items():
            if not isinstance(vals, list) or not vals:
                raise c.fail(f"{where}.grid.{k}", f"expected a non-empty list, got {_show(vals)}", f"write {k}: [1, 5, 10]")
            if k in params:
                raise c.fail(f"{where}.grid.{k}", f"{k} is also set under params", f"keep {k} in one of params or grid")
            axes.append([(k, _value(v, f"{where}.grid.{k}", c)) for v in vals])
        for combo in itertools.product(*axes) if axes else [()]:
            p = {**params, **dict(combo)}
            _check_params(c, name, p, where)
            specs.append(format_variant(name, dict(sorted(p.items()))))
    specs += _self_consistency(c, data)
    return specs


def _split_inline(c: _Checker, text: str, where: str) -> tuple[str, dict[str, str]]:
    try:
        name, params = parse_variant(text)
    except ParamSyntaxError as e:
        raise c.fail(where, e.problem, e.fix) from None
    return _graph_name(c, name, where), params


def _self_consistency(c: _Checker, data: dict) -> list[str]:
    if "self_consistency" not in data:
        return []
    sc = c.table(data["self_consistency"], "self_consistency", "{over: [closed_book], n: 20, temperature: 0.7}")
    c.keys(sc, SC_KEYS, "self_consistency.")
    if "inner_params" in sc:
        raise c.fail("self_consistency.inner_params", "inner params go with each wrapped graph",
                     "write over: ['standard_rag[k=5]'] instead")
    if "self_consistency" not in graphs:
        raise c.fail("self_consistency", "no graph named self_consistency is registered", "remove the section")
    over = c.strings(sc.get("over"), "self_consistency.over", "over: [closed_book, 'standard_rag[k=5]']") \
        if sc.get("over") is not None else None
    if not over:
        raise c.fail("self_consistency.over", "missing", "list the graphs to wrap, e.g. over: [closed_book]")
    axes = []
    for k in ("n", "temperature", "resample"):
        if k in sc:
            vals = sc[k] if isinstance(sc[k], list) else [sc[k]]
            if not vals:
                raise c.fail(f"self_consistency.{k}", "empty list", f"give at least one value for {k}")
            axes.append([(k, _value(v, f"self_consistency.{k}", c)) for v in vals])
    specs = []
    for i, inner in enumerate(over):
        name, inline = _split_inline(c, inner, f"self_consistency.over[{i}]")
        if name == "self_consistency":
            raise c.fail(f"self_consistency.over[{i}]", "self_consistency cannot wrap itself", "wrap another graph")
        _check_params(c, name, inline, f"self_consistency.over[{i}]")
        try:
            nested = {"inner_params": format_nested(inline)} if inline else {}
        except ParamSyntaxError as e:
            raise c.fail(f"self_consistency.over[{i}]", e.problem, e.fix) from None
        for combo in itertools.product(*axes) if axes else [()]:
            p = {"inner": name, **nested, **dict(combo)}
            _check_params(c, "self_consistency", p, f"self_consistency.over[{i}]")
            specs.append(format_variant("self_consistency", dict(sorted(p.items()))))
    return specs


# -- planning ------------------------------------------------------------------------------------

def expected_calls(spec: Any, params: Any, n_options: int | None = None) -> tuple[int, int] | None:
    """(fewest, most) LLM calls one question makes in this graph; None when the graph does not say.

    A graph tells by a method ``expected_llm_calls(n_options=None)`` on its params returning an int
    or a (low, high) pair; the built-in single-call graphs are known here. The bounds hold for any LLM
    replies (unparseable ones included) when every search returns the hits it asks for. Where calls
    are per option, ``n_options`` gives the question's option count; None: any count within the
    benchmark's limits. A method without an ``n_options`` parameter (an older user graph) is called
    without it.
    """
    hook = getattr(params, "expected_llm_calls", None)
    if callable(hook):
        r = hook(n_options=n_options) if n_options is not None and _takes_n_options(hook) else hook()
        return (r, r) if isinstance(r, int) else (int(r[0]), int(r[1]))
    if spec.name == "self_consistency":
        inner = graphs.get(params.inner)
        got = expected_calls(inner, inner.make_params(parse_nested(params.inner_params)), n_options)
        if got is None:
            return None
        n = params.n
        if getattr(params, "resample", "answer") == "graph":
            return got[0] * (1 + n), got[1] * (1 + n)
        return got[0] + n, got[1] + n
    if spec.name in FIXED_CALLS:
        return FIXED_CALLS[spec.name], FIXED_CALLS[spec.name]
    return None


def _takes_n_options(hook: Callable) -> bool:
    """Whether an ``expected_llm_calls`` method accepts ``n_options`` (inspected once per function)."""
    return _accepts_n_options(getattr(hook, "__func__", hook))


@functools.lru_cache(maxsize=None)
def _accepts_n_options(fn: Callable) -> bool:
    try:
        ps = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "n_options" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
               or p.kind is p.VAR_KEYWORD for p in ps)


def dry_run(jobs: list[RunJob], *, retry_errors: bool = False) -> tuple[list[dict], dict]:
    """Cells with their questions, work left and expected LLM calls; nothing is started or written.

    A cell's calls are summed over its questions to do, grouped by their number of options (graphs
    that call the LLM per option count each question's own options).
    """
    rows, lo_sum, hi_sum, unknown = [], 0, 0, 0
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
            if calls is None:
                unknown += todo
            else:
                lo_sum += calls[0]
                hi_sum += calls[1]
            rows.append(row)
    totals = {"cells": len(rows), "todo": sum(r["todo"] for r in rows), "calls_min": lo_sum, "calls_max": hi_sum,
              "questions_with_unknown_calls": unknown}
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
    return "\n".join(lines)


# -- running -------------------------------------------------------------------------------------

def run_sweep(sweep: Sweep, *, shard: Shard | None = None, cache: str = "use", retry_errors: bool = False,
              allow_errors: bool | None = None, out: str | None = None,
              progress: Callable[[str], None] = log) -> list[Path]:
    """Run every (endpoint, seed) of ``sweep`` in one event loop; return the run folders.

    Example:
        >>> run_sweep(load_sweep("sweep.yaml"), shard=Shard.parse("1/4"))  # doctest: +SKIP
    """
    jobs = sweep.jobs(shard=shard, cache=cache, retry_errors=retry_errors, allow_errors=allow_errors, out=out)
    dirs = execute_runs(jobs, cache=cache, retry_errors=retry_errors, progress=progress,
                        reporter=pick_reporter(progress))
    from ragsafe.experiments.index import RunIndex

    RunIndex(Path(out or sweep.base["out"])).refresh()
    return dirs


# -- merging shards --------------------------------------------------------------------------------


