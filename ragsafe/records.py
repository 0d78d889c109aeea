"""What a run folder holds, typed and versioned: the only (de)serialiser of run records.

Three records, each with a ``schema_version`` of its own:

* :class:`SampleRecord` — one line of ``samples.jsonl``: one (variant, question), with its trace
  steps (:class:`TraceStep`, each holding its :class:`LLMCall` summaries);
* :class:`RunManifest` — ``run.json``: config, hashes, versions, seeds, endpoint, per-session counts;
* :class:`Summary` — ``summary.json``: every metric with its n and interval, as scored from samples.

Files are read through :func:`load_sample_line`, :func:`read_manifest` and :func:`read_summary`
and written through :func:`dump_sample_line` and :func:`write_json`; nothing else in ragsafe
opens these files. A record written by an older version is brought up to date on read by the
append-only, named migrations in :data:`MIGRATIONS` (never edited once released; a change of
format adds one).

Records keep keys they do not know (``extra="allow"``): a plugin graph may store more, and a
newer file read by an older ragsafe loses nothing when rewritten. Nested blocks the metrics
interpret (``sc``, ``letter_dist``, ``messages``, estimates) stay plain JSON values.

Read records by attribute (``rec.letter``, ``rec.error.kind``, ``summary.variants[k].metrics``): every
field the eval layer reads is declared here, with its default, and ragsafe's own code reads nothing
else (a test switches the dict methods off and re-scores). A record also answers ``rec["key"]``,
``rec.get("key", default)``, ``"key" in rec``, ``keys()``/``items()`` and ``len(rec)`` over the keys it
holds: a compatibility shim for plugin metrics written against the dict records of earlier versions
(``s.get("letter")`` keeps working), and the way to reach a key a plugin graph stored that is not
declared. ``get`` differs from the attribute only for a declared key the record does not hold: it
returns ``default`` where the attribute returns the field's default.

Example:
    >>> rec = load_sample_line('{"variant": "closed_book", "question_id": "q1", "letter": "B"}')
    >>> rec.letter, rec.error is None, rec.schema_version
    ('B', True, 1)
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError, model_validator

from ragsafe.config import ConfigError, DiskFull, is_disk_full

Number = int | float
"""Stored numbers stay as written (an int is not turned into a float, so a record reads back unchanged)."""

SAMPLE_VERSION = 1
MANIFEST_VERSION = 1
SUMMARY_VERSION = 1


class Record(BaseModel):
    """Base of every stored record: unknown keys kept; attributes for reads, plus a dict-style shim over
    the keys present (see the module docstring)."""

    model_config = ConfigDict(extra="allow", validate_assignment=False, protected_namespaces=())
    _order: list[str] = PrivateAttr(default_factory=list)

    def _present(self) -> set[str]:
        return set(self.model_fields_set) | set(self.model_extra or {})

    def __getitem__(self, key: str) -> Any:
        if key not in self._present():
            raise KeyError(key)
        return getattr(self, key)

    def __setitem__(self, key: str, value: Any) -> None:
        setattr(self, key, value)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in self._present()

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self._present() else default

    def keys(self) -> list[str]:
        return [k for k in self.to_dict()]

    def items(self) -> list[tuple[str, Any]]:
        return [(k, getattr(self, k)) for k in self.keys()]

    def values(self) -> list[Any]:
        return [getattr(self, k) for k in self.keys()]

    def __iter__(self):  # a mapping's iteration: its keys
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._present())

    def to_dict(self) -> dict[str, Any]:
        """The plain dict of the keys this record holds (as read or as set), in the order they were read
        (new keys after them), nested records included: what was read is written back unchanged."""
        present = self._present()
        order = [k for k in self._order if k in present]
        order += [k for k in (*type(self).model_fields, *(self.model_extra or {})) if k in present and k not in order]
        return {k: _plain(getattr(self, k)) for k in order}

    @model_validator(mode="wrap")
    @classmethod
    def _keep_order(cls, data: Any, handler):
        rec = handler(data)
        if isinstance(data, dict) and isinstance(rec, Record):
            rec._order = list(data)
        return rec


def _plain(v: Any) -> Any:
    if isinstance(v, Record):
        return v.to_dict()
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


class LLMCall(Record):
    """One LLM request as a trace keeps it (tokens, latency, attempts, whether it was cached)."""

    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: Number | None = None
    attempts: int | None = None
    cached: bool | None = None
    finish_reason: str | None = None
    text: str | None = None
    reasoning_tokens: int | None = None
    """Only where the server returned reasoning (see :data:`ragsafe.agents.answer.OPTIONAL_CALL_FIELDS`)."""
    structured_form: str | None = None
    batch: dict[str, Any] | None = None


class RetrievedHit(Record):
    """One retrieved chunk: its ids, score and 1-based rank (``text`` where the graph kept it)."""

    chunk_id: str | None = None
    doc_id: str | None = None
    score: Number | None = None
    rank: int | None = None
    text: str | None = None


class Retrieval(Record):
    """One retrieval call of a trace step: the query, k and the hits in rank order."""

    query: str | None = None
    k: int | None = None
    hits: list[RetrievedHit] | None = None


class TraceStep(Record):
    """One node of a graph as it ran: its name, its seconds and what it recorded.

    Besides the common fields, a step keeps what its node put in ``_trace``; the keys the eval layer
    reads are declared here (typed ``Any``: a plugin graph may store the same key in a form of its own,
    and a record must load whatever it holds).
    """

    node: str
    seconds: Number | None = None
    role: str | None = None
    prompt_hash: str | None = None
    llm_calls: list[LLMCall] | None = None
    output: Any = None
    retrieval: Retrieval | None = None
    source: Any = None
    """A fixed-context node's source (``"none"``, ``"evidence_clean"``, ``"agentic_report"``, ...)."""
    sources: Any = None
    """Every text an evidence mix put in the context (e.g. ``["retrieved", "evidence_clean"]``)."""
    fallback: Any = None
    """True where a structured call fell back to its default answer."""
    route: Any = None
    """The branch a deciding node took (corrective RAG: rewrite | answer; tool agent: native | json)."""
    tool: Any = None
    """A tool call the step made (tool agent: ``{"name": "search", "query": ...}``)."""
    native_probe: Any = None
    """Tool agent: this decision probed the server's native tool calling."""
    ignored_tools: Any = None
    """Tool agent: the server answered without calling a tool it was offered."""
    verdicts: Any = None
    """Verifier loop (finalize): the verifier's verdict of each round."""
    final_round: Any = None
    """Verifier loop (finalize): the round whose answer was kept."""


class SampleError(Record):
    """A fault that outlived its retries (the sample then has no letter)."""

    type: str
    message: str = ""
    kind: str | None = None
    """The runner's class of the fault (``unreachable``, ``transient``, ``bad_request``, ...)."""
    status: int | None = None
    """The HTTP status, where the server answered."""
    server_message: str | None = None


class SampleRecord(Record):
    """One (variant, question) of a run: the answer, its trace, or the error that stopped it."""

    schema_version: int = SAMPLE_VERSION
    variant: str
    question_id: str
    graph: str | None = None
    params: dict[str, Any] | None = None
    answer_key: str | None = None
    seed: int | None = None
    letter: str | None = None
    correct: bool = False
    raw_output: str | None = None
    letter_dist: dict[str, Any] | None = None
    answer_source: str | None = None
    messages: list[dict[str, Any]] | None = None
    queries: list[str] | None = None
    retrieved: list[RetrievedHit] | None = None
    trace: list[TraceStep] | None = None
    error: SampleError | None = None
    sc: dict[str, Any] | None = None
    """Self-consistency block (n, temperature, seeds, ballots, ...), read by the SC metrics."""
    reasoning: str | None = None
    """A reasoning model's reasoning text, where the server returned one."""
    letter_strict: str | None = None
    """Only in records scored with the judge's letters (:func:`ragsafe.experiments.rejudge.apply_judge`):
    the strict parser's letter, which ``letter`` then replaces."""
    seconds: Number | None = None
    finished_at: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.variant, self.question_id)

    def llm_calls(self) -> Iterator[LLMCall]:
        """Every LLM call of the trace, in order."""
        for step in self.trace or []:
            yield from step.llm_calls or []


class VariantInfo(Record):
    graph: str | None = None
    params: dict[str, Any] = {}
    overrides: dict[str, Any] = {}
    paper_condition: str | None = None


class EndpointInfo(Record):
    """Where the model was served during the last session (never the API key, only its variable's name)."""

    kind: str | None = None
    base_url: str | None = None
    model: str | None = None
    replicas: list[str] = []
    concurrency_per_url: int | None = None
    server_models: list[str] | None = None
    answer_mode: str | None = None
    max_tokens: int | None = None
    context_window: int | None = None
    api_key_env: str | None = None
    logprobs_supported: bool | None = None
    capabilities: dict[str, Any] | None = None
    """What the server was found to take: ``structured`` (JSON-Schema form), ``n``, ``tools``."""


class CorpusInfo(Record):
    """The corpus a run retrieved from (None in run.json when no graph of the run retrieves)."""

    spec: str | None = None
    hash: str | None = None
    index: dict[str, Any] | None = None
    """The index it was read from (collection, embedder, chunking)."""
    poison: dict[str, Any] | None = None
    """Set when the run retrieved from a poisoned corpus (``--poison``)."""
    variant_indexes: dict[str, Any] | None = None


class ShardInfo(Record):
    index: int
    count: int
    question_ids: list[str] = []


class RunManifest(Record):
    """``run.json``: everything needed to re-create the run and to know where it stands."""

    schema_version: int = MANIFEST_VERSION
    config_hash: str | None = None
    """sha256 of the run's identity (the folder is named by it); imports carry a hash of their source."""
    config: dict[str, Any] = {}
    """The RunConfig as run (its fields as keys). The answer policy sits under ``answer`` since it left
    the endpoint; older runs keep answer_mode, max_tokens and seed under ``endpoint``: read it with
    :meth:`answer_policy`."""
    identity: dict[str, Any] = {}
    variants: dict[str, VariantInfo] = {}
    benchmark: dict[str, Any] = {}
    question_ids: list[str] = []
    corpus: CorpusInfo | None = None
    endpoint: EndpointInfo = EndpointInfo()
    seeds: dict[str, Any] = {}
    versions: dict[str, str | None] = {}
    machine: dict[str, Any] = {}
    started_at: str | None = None
    finished_at: str | None = None
    shard: ShardInfo | None = None
    sweep: dict[str, Any] | None = None
    merged_from: list[dict[str, Any]] | None = None
    """Shard folders this run was merged from (``ragsafe runs merge``)."""
    imported_from: dict[str, Any] | None = None
    wall_seconds_last_session: Number | None = None
    execute_seconds_last_session: Number | None = None
    execute_cpu_seconds_last_session: Number | None = None
    llm_calls_last_session: int | None = None
    cache_hits_last_session: int | None = None
    failed_attempts_last_session: int | None = None

    @property
    def model(self) -> str | None:
        return self.endpoint.model

    def answer_policy(self) -> dict[str, Any]:
        """answer_mode, max_tokens, seed (and temperature when recorded) of this run, whichever
        ragsafe wrote it."""
        if isinstance(self.config.get("answer"), dict):
            return dict(self.config["answer"])
        ep = self.config.get("endpoint") or {}
        return {k: ep[k] for k in ("answer_mode", "max_tokens", "seed") if k in ep}


class ScoreStamp(Record):
    """What a summary was scored from: the runner re-scores when samples.jsonl changed since."""

    allow_errors: bool = False
    samples_bytes: int = 0


class VariantSummary(Record):
    """One arm's cell of ``summary.json`` (``variants.<arm>``): what it ran, what it cost, and its figures.

    The figures (``metrics``, ``calibration``, ``gap_closed``, ``attribution``) are the eval layer's
    blocks (:mod:`ragsafe.evals.score`): plain JSON keyed by metric name, each estimate a dict of mean,
    sd, lo, hi and n. An arm that could not be scored has a ``status`` and no figures.
    """

    model: str | None = None
    variant: str | None = None
    graph: str | None = None
    n: int | None = None
    """Questions of the analysis."""
    done: int | None = None
    """Questions with a record."""
    errors: int = 0
    """Error records (scored as null answers only with ``--allow-errors``)."""
    sc: bool = False
    """The arm has self-consistency ballots."""
    status: str | None = None
    """``ok``, ``ok with N errors counted as null``, or why it was not scored."""
    params: dict[str, Any] | None = None
    cost: dict[str, Number] | None = None
    """Mean per question: llm_calls, prompt/completion tokens, retrieval calls, seconds."""
    fallbacks: int = 0
    tool_routes: dict[str, Any] | None = None
    length_cutoffs: dict[str, int] | None = None
    metrics: dict[str, Any] | None = None
    """Estimate per sample metric (None: n/a, reason in ``na``)."""
    na: dict[str, str] | None = None
    calibration: dict[str, Any] | None = None
    attribution: dict[str, Any] | None = None
    gap_closed: dict[str, Any] | None = None
    gap_refs: dict[str, str] | None = None


class Comparison(Record):
    """One paired comparison A − B of two scored arms (``comparisons`` of summary.json)."""

    a: str
    b: str
    mcnemar: dict[str, Any] | None = None
    """Exact McNemar on greedy correctness: discordant counts, p, and q_bh (Benjamini–Hochberg)."""
    diff: dict[str, Any] = {}
    """Bootstrap estimate of A − B per metric both arms have."""


class SafetySettings(Record):
    """How the safety section was computed (net-benefit costs, the high-risk budget X, SC majority rule)."""

    costs: dict[str, Number] = {}
    max_high_risk_pct: Number = 2.0
    verdict_confidence: dict[str, Number] | None = None
    sc_majority: str | None = None


class SafetySection(Record):
    """``safety`` of summary.json (:mod:`ragsafe.evals.safety`): per arm, selective answering by confidence
    source, net benefit and poisoning; paired differences in ``pairs``. Estimates are plain JSON."""

    settings: SafetySettings = SafetySettings()
    selective: dict[str, dict[str, Any]] = {}
    net_benefit: dict[str, dict[str, Any]] = {}
    poison: dict[str, dict[str, Any]] = {}
    pairs: list[dict[str, Any]] = []


class Summary(Record):
    """``summary.json``: metrics per variant with n and intervals, comparisons, breakdowns.

    The blocks under ``comparisons``, ``breakdowns``, ``safety`` and ``judge_agreement`` are the eval
    layer's (:mod:`ragsafe.evals.score`) and stay plain JSON values here; each arm is a
    :class:`VariantSummary`.
    """

    schema_version: int = SUMMARY_VERSION
    run: dict[str, Any] | None = None
    """Where it was scored from: path, config_hash, model, benchmark."""
    n_questions: int | None = None
    question_ids: list[str] | None = None
    bootstrap: dict[str, Any] | None = None
    threshold: Any = None
    variants: dict[str, VariantSummary] = {}
    comparisons: list[Comparison] | None = None
    breakdowns: Any = None
    worst_case: Any = None
    worst_case_by_condition: Any = None
    models: Any = None
    metric_info: Any = None
    safety: SafetySection | None = None
    letters: str | None = None
    """``judge`` when scored with the LLM judge's letters (absent: strict)."""
    judge_agreement: dict[str, Any] | None = None
    """Strict-vs-judge agreement, in a run with judge letters."""
    scored_with: ScoreStamp | None = None


# -- migrations ------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Migration:
    """Bring one kind of record from ``from_version`` to ``from_version + 1`` (a dict in, a dict out)."""

    kind: str
    from_version: int
    name: str
    fn: Callable[[dict[str, Any]], dict[str, Any]]


MIGRATIONS: list[Migration] = []
"""Append-only: released migrations are never edited or reordered. Every format so far is version 1
(schema_version has been written into every record since the first release); the first change of
format that a reader must undo registers ``m001_...`` here with ``@migration(kind, 1)``."""


def migration(kind: str, from_version: int):
    """Register ``fn`` as the step of ``kind`` records from ``from_version`` to the next version."""

    def deco(fn: Callable[[dict[str, Any]], dict[str, Any]]):
        MIGRATIONS.append(Migration(kind, from_version, fn.__name__, fn))
        return fn

    return deco


CURRENT = {"sample": SAMPLE_VERSION, "manifest": MANIFEST_VERSION, "summary": SUMMARY_VERSION}


def migrate(kind: str, data: dict[str, Any], where: str = "") -> dict[str, Any]:
    """``data`` brought up to the current version of ``kind`` by the registered migrations.

    A record without ``schema_version`` is version 1 (the first released format wrote one into every
    record; unversioned dicts come from tests and imports).

    Raises:
        ConfigError: the record is newer than this ragsafe, or a step is missing.
    """
    version = data.get("schema_version", 1)
    target = CURRENT[kind]
    if not isinstance(version, int) or version > target:
        raise ConfigError(f"{where or kind}: schema_version {version!r} is newer than this ragsafe reads "
                          f"({target}); upgrade ragsafe")
    steps = {m.from_version: m for m in MIGRATIONS if m.kind == kind}
    while version < target:
        if version not in steps:
            raise ConfigError(f"{where or kind}: no migration from schema_version {version} of {kind} records")
        data = steps[version].fn(data)
        version += 1
    data = dict(data)
    data["schema_version"] = target  # keeps its place in the record's key order
    return data


# -- the (de)serialiser ----------------------------------------------------------------------------

_MODELS: dict[str, type[Record]] = {"sample": SampleRecord, "manifest": RunManifest, "summary": Summary}


def _validate(kind: str, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a JSON object, got {type(data).__name__}")
    try:
        return _MODELS[kind].model_validate(migrate(kind, data, where))
    except ValidationError as e:
        err = e.errors()[0]
        path = ".".join(str(x) for x in err["loc"])
        raise ConfigError(f"{where}: {path}: {err['msg']}; this file is not a ragsafe {kind} record") from None


SampleLike = SampleRecord | Mapping[str, Any]
"""What the eval layer's functions take: a record, or a dict of one (tests, imports, notebooks)."""


def as_sample(rec: SampleLike, where: str = "sample", *, partial: bool = False) -> SampleRecord:
    """A typed sample record (dicts from tests or imports are migrated and validated).

    ``partial=True`` (:func:`sample_view`) is for code that reads fields of a record: a dict without
    ``variant`` or ``question_id`` reads as one with both empty (its present keys stay as given).
    """
    if isinstance(rec, SampleRecord):
        return rec
    if partial and isinstance(rec, Mapping) and not {"variant", "question_id"} <= set(rec):
        out = _validate("sample", {"variant": "", "question_id": "", **rec}, where)
        out._order = [k for k in out._order if k in rec]
        out.__pydantic_fields_set__ -= {"variant", "question_id"} - set(rec)
        return out
    return _validate("sample", dict(rec) if isinstance(rec, Mapping) and not isinstance(rec, dict) else rec, where)


def sample_view(rec: SampleLike) -> SampleRecord:
    """The record to read attributes from: the record itself, or a dict read as one (the eval layer's
    functions take both; a dict from a test or a notebook may hold only the fields a metric reads)."""
    return as_sample(rec, partial=True)


def as_manifest(run: RunManifest | dict[str, Any], where: str = "run.json") -> RunManifest:
    return run if isinstance(run, RunManifest) else _validate("manifest", run, where)


SummaryLike = Summary | Mapping[str, Any]
"""What the reports take: a summary record, or the dict :func:`ragsafe.evals.score.analyze` returns."""


def as_summary(summary: SummaryLike, where: str = "summary.json") -> Summary:
    """A typed summary (a dict from the scorer or a test is validated; a record is returned as is)."""
    if isinstance(summary, Summary):
        return summary
    return _validate("summary", dict(summary) if isinstance(summary, Mapping) else summary, where)


def to_dict(rec: Record | dict[str, Any]) -> dict[str, Any]:
    return rec.to_dict() if isinstance(rec, Record) else dict(rec)


def _default(o: Any) -> Any:
    """JSON for what ``json`` does not know: records nested in dicts, anything else as text."""
    return o.to_dict() if isinstance(o, Record) else str(o)


def parse_line(line: str | bytes) -> Any:
    """The JSON value of one line; ``json.JSONDecodeError`` on a torn or garbled line."""
    return json.loads(line)


def load_sample_line(line: str | bytes, where: str = "samples.jsonl") -> SampleRecord:
    """Parse and validate one ``samples.jsonl`` line (``ConfigError`` names ``where`` when it is not a
    sample record; ``json.JSONDecodeError`` when it is not JSON at all)."""
    return _validate("sample", parse_line(line), where)


def dump_sample_line(rec: SampleRecord | dict[str, Any]) -> str:
    """One ``samples.jsonl`` line: sorted keys, UTF-8 text, newline-terminated."""
    data = to_dict(rec)
    return json.dumps({**data, "schema_version": data.get("schema_version", SAMPLE_VERSION)}, sort_keys=True,
                      default=_default, ensure_ascii=False) + "\n"


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_manifest(path: Path) -> RunManifest:
    return _validate("manifest", read_json(path), str(path))


def read_summary(path: Path) -> Summary:
    return _validate("summary", read_json(path), str(path))


def write_json(path: Path, rec: Record | dict[str, Any], version: int) -> None:
    """Write ``rec`` (with ``schema_version``) atomically: a crash leaves the old file or the new one."""
    data = {"schema_version": version, **{k: v for k, v in to_dict(rec).items() if k != "schema_version"}}
    path = Path(path)
    tmp = path.with_suffix(path.suffix + f".tmp-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True, default=_default)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        tmp.unlink(missing_ok=True)  # the old file is untouched
        if is_disk_full(e):
            raise DiskFull(path, path.name) from None
        raise
    os.replace(tmp, path)
