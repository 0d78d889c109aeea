"""The shape of a sweep file, as pydantic models: keys, types, bounds and defaults in one place.

:func:`parse_sweep_file` validates a loaded YAML/TOML mapping and turns the first problem into the
message ragsafe gives for every bad input: the file, the key path (``endpoints[0].concurrency``),
what is wrong and the fix (``write e.g. concurrency: 8``). What needs the registries (graph names,
graph params, benchmark and corpus names) is checked by :mod:`ragsafe.experiments.sweep` after this.
"""

from __future__ import annotations

import difflib
import json
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import annotated_types
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator

from ragsafe.config import ANSWER_MODES, ConfigError
from ragsafe.defaults import BOOTSTRAP_B, BOOTSTRAP_SEED, CHUNK_OVERLAP, CHUNK_SIZE, DEFAULT_MODEL


class SweepError(ConfigError):
    """A sweep file problem: names the file, the key and the fix."""


Text = Annotated[str, annotated_types.MinLen(1)]
Scalar = Union[bool, int, float, str]


def _listify(v: Any) -> Any:
    return [v] if isinstance(v, (str, dict)) or (isinstance(v, int) and not isinstance(v, bool)) else v


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)


class ChunkSpec(_Table):
    size: int = Field(CHUNK_SIZE, ge=1, examples=[CHUNK_SIZE], description="chunk length in embedder tokens")
    overlap: int = Field(CHUNK_OVERLAP, ge=0, examples=[CHUNK_OVERLAP], description="tokens shared by neighbours")
    tokenizer: Text = Field("embedder", examples=["tiktoken:cl100k_base"],
                            description="what counts chunk tokens: embedder, tiktoken:cl100k_base (the paper's) "
                                        "or hf:FOLDER")

    @field_validator("tokenizer")
    @classmethod
    def _tokenizer(cls, v: str) -> str:
        if not (v == "embedder" or v.startswith(("tiktoken:", "hf:"))):
            raise ValueError(f"unknown chunk tokenizer {v!r}: write embedder, tiktoken:cl100k_base (the paper's) "
                             f"or hf:FOLDER")
        return v


class ChromaSpec(_Table):
    path: Text | None = Field(None, examples=["/data/chroma"], description="PersistentClient folder")
    url: Text | None = Field(None, examples=["http://127.0.0.1:8000"], description="URL of a `chroma run` server")


class BootstrapSpec(_Table):
    B: int = Field(BOOTSTRAP_B, ge=1, examples=[BOOTSTRAP_B], description="bootstrap resamples")
    seed: int = Field(BOOTSTRAP_SEED, ge=0, examples=[BOOTSTRAP_SEED], description="bootstrap seed")


class EndpointSpec(_Table):
    name: Text | None = Field(None, examples=["qwen-7b"], description="a label (default: the model id)")
    model: Text | None = Field(None, examples=[DEFAULT_MODEL],
                               description="model id the server serves (for base_url local: an embedded model)")
    base_url: Text = Field("local", examples=["http://127.0.0.1:8000/v1"],
                           description="OpenAI-compatible base URL, or local for the embedded server (default: local)")
    replicas: list[Text] = Field([], examples=["[http://127.0.0.1:8001/v1]"],
                                 description="further base URLs serving the same model")
    concurrency: int = Field(4, ge=1, examples=[8], description="requests in flight per URL (default: 4)")
    workers: int | None = Field(None, ge=1, examples=[16], description="questions in flight (default: 2 x concurrency x URLs)")
    api_key_env: Text | None = Field(None, examples=["OPENAI_API_KEY"],
                                     description="name of the environment variable that holds the key")
    timeout: float | None = Field(None, gt=0, examples=[120], description="per-request timeout in seconds")
    max_retries: int | None = Field(None, ge=0, examples=[4], description="retries on connection errors, timeouts, 429 and 5xx")
    backoff_initial: float = Field(0.5, ge=0, examples=[0.5], description="first backoff wait in seconds (default: 0.5)")
    backoff_max: float = Field(20.0, ge=0, examples=[20], description="longest backoff wait in seconds (default: 20)")
    answer_mode: Literal["generate", "letter_logprobs"] | None = Field(None, description=" or ".join(ANSWER_MODES))
    max_tokens: int | None = Field(None, ge=1, examples=[10],
                                   description="answer budget in tokens (default 10, or 4096 with reasoning: true)")
    reasoning: bool | None = Field(None, examples=[True],
                                   description="true for a reasoning model (answer budget 4096, the paper's)")
    context_window: int | None = Field(None, ge=1, examples=[4096], description="model context size in tokens")

    _replicas = field_validator("replicas", mode="before")(_listify)


class JudgeSpec(_Table):
    model: Text | None = Field(None, examples=["Qwen/Qwen2.5-7B-Instruct"],
                               description="judge model id (default: each run's own model)")
    base_url: Text | None = Field(None, examples=["http://127.0.0.1:8000/v1"],
                                  description="the judge's OpenAI-compatible base URL, or local (default: each run's endpoint)")
    api_key_env: Text | None = Field(None, examples=["OPENAI_API_KEY"],
                                     description="name of the environment variable that holds the judge's key")
    concurrency: int = Field(4, ge=1, examples=[8], description="records judged at once (default: 4)")


class GraphTable(_Table):
    name: Text = Field(examples=["standard_rag"], description="registered graph name")
    params: dict[str, Scalar] = Field({}, examples=["{k: 5}"], description="{param: value}")
    grid: dict[str, Annotated[list[Scalar], annotated_types.MinLen(1)]] = Field(
        {}, examples=["{k: [1, 5, 10]}"], description="{param: [v1, v2]}")


def _graph_kind(v: Any) -> str:
    return "name" if isinstance(v, str) else "table"


GraphItem = Annotated[Union[Annotated[Text, Tag("name")], Annotated[GraphTable, Tag("table")]],
                      Discriminator(_graph_kind)]


class SelfConsistencySpec(_Table):
    over: list[Text] | None = Field(None, examples=["[closed_book, 'standard_rag[k=5]']"],
                                    description="list of graphs to wrap")
    n: list[Scalar] | None = Field(None, description="samples (or a list)")
    temperature: list[Scalar] | None = Field(None, description="float (or a list)")
    resample: list[Scalar] | None = Field(None, description="answer or graph (or a list)")
    inner_params: Any = Field(None, description="not here: write 'graph[k=v]' in over")

    _lists = field_validator("over", "n", "temperature", "resample", mode="before")(
        lambda v: v if v is None or isinstance(v, list) else [v])


class SweepFile(_Table):
    """The top level of a sweep file."""

    name: Text | None = Field(None, description="a label for this sweep (default: the file name)")
    benchmark: Text = Field("demo", examples=["demo"],
                            description="registered benchmark or path to a .jsonl file (default: demo)")
    split: Literal["dev", "test"] | None = Field(None, description="dev or test (default: all questions)")
    limit: int | None = Field(None, ge=1, examples=[50], description="first N questions in id order")
    corpus: Text = Field("demo", examples=["demo"],
                         description="registered corpus, folder of .md/.txt, or .jsonl dump (default: demo)")
    chunk: ChunkSpec = Field(ChunkSpec(), examples=[f"{{size: {CHUNK_SIZE}, overlap: {CHUNK_OVERLAP}}}"],
                             description=f"{{size: {CHUNK_SIZE}, overlap: {CHUNK_OVERLAP}}}")
    embedder: Union[Text, dict[str, Any]] | None = Field(
        None, examples=["all-mpnet-base-v2", "{name: /models/bge-large-en-v1.5, device: cuda}"],
        description="a packaged name or folder, or {name, device, batch_size, query_prefix, base_url, model, ...}")
    chroma: ChromaSpec = Field(ChromaSpec(), examples=["{url: http://127.0.0.1:8000}"],
                               description="{path: FOLDER} or {url: http://127.0.0.1:8000}")
    seeds: Annotated[list[Annotated[int, annotated_types.Ge(0)]], annotated_types.MinLen(1)] = Field(
        [0], examples=["[0, 1, 2]"], description="list of sampling seeds, e.g. [0, 1, 2] (default: [0])")
    endpoints: list[EndpointSpec] = Field(examples=["[{model: MODEL_ID, base_url: http://127.0.0.1:8000/v1}]"],
                                          description="list of endpoints (model, base_url, replicas, concurrency, ...)")
    graphs: list[GraphItem] = Field([], examples=["[closed_book, standard_rag]"],
                                    description="list of graph names, 'name[k=v]' strings, or {name, params, grid} tables")
    self_consistency: SelfConsistencySpec | None = Field(
        None, examples=["{over: [closed_book], n: 20, temperature: 0.7}"],
        description="{over: [graphs], n: 20, temperature: 0.7, resample: answer}")
    out: Text = Field("runs", examples=["runs"], description="folder that holds the run folders (default: runs)")
    parser: Literal["strict", "judge", "both"] = Field(
        "strict", description="letters scored: strict (default), judge (the paper's LLM-judge re-read after each "
                              "run), or both (strict scored, judge agreement shown)")
    judge: JudgeSpec = Field(JudgeSpec(), examples=["{model: Qwen/Qwen2.5-7B-Instruct, base_url: http://127.0.0.1:8000/v1}"],
                             description="{model, base_url, api_key_env, concurrency} of the judge (with parser: judge or both)")
    procs: Union[int, Text] = Field(
        1, examples=[2, "auto"], description="worker processes the questions are split over, or auto (one per core); "
                                             "each endpoint's concurrency is divided among them (default: 1)")
    skip_invalid: bool = Field(False, description="true to run without the benchmark's invalid records")
    allow_errors: bool = Field(False, description="true to report metrics for variants with error samples")
    plugins: list[Text] = Field([], examples=["[my_graphs.py]"],
                                description="list of .py files or modules that register your own graphs, metrics, "
                                            "retrievers, ...")
    graph_modules: list[Text] = Field([], examples=["[my_graphs.py]"], description="the older name of plugins")
    retriever: Text | None = Field(None, examples=["hybrid"],
                                   description="what retrieving graphs search: NAME, NAME[key=value,...] or "
                                               "module:factory (default: chroma)")
    bootstrap: BootstrapSpec = Field(BootstrapSpec(), examples=[f"{{B: {BOOTSTRAP_B}, seed: {BOOTSTRAP_SEED}}}"],
                                     description=f"{{B: {BOOTSTRAP_B}, seed: {BOOTSTRAP_SEED}}}")

    _lists = field_validator("seeds", "endpoints", "graphs", "graph_modules", "plugins", mode="before")(_listify)


def describe(model: type[BaseModel]) -> dict[str, str]:
    """Key -> description of a table (the sweep docs and the unknown-key hints read this)."""
    return {k: f.description or "" for k, f in model.model_fields.items()}


# -- errors as ragsafe words them -------------------------------------------------------------------

def _show(v: Any) -> str:
    text = json.dumps(v, default=str)
    return (text[:60] + "...") if len(text) > 60 else text


def _parts(loc: tuple) -> list:
    """``loc`` without the tags pydantic adds for the two forms of a graphs item."""
    out: list = []
    for i, part in enumerate(loc):
        if part in ("name", "table") and i >= 2 and loc[i - 2] == "graphs" and isinstance(loc[i - 1], int):
            continue
        out.append(part)
    return out


def _key(loc: tuple) -> str:
    out = ""
    for part in _parts(loc):
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _walk(loc: tuple) -> tuple[type[BaseModel], Any, str | None]:
    """The table a location sits in, the field's info there (None: unknown key) and its name."""
    model: type[BaseModel] = SweepFile
    field, name = None, None
    for part in _parts(loc):
        if not isinstance(part, str):
            continue
        if part not in model.model_fields:
            if field is not None and typing.get_origin(field.annotation) is dict:
                return model, field, name  # a key of a free-form table (grid.k, params.k)
            return model, None, part
        field, name = model.model_fields[part], part
        inner = _model_in(field.annotation)
        if inner is not None:
            model = inner
    return model, field, name


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _bound(field: Any) -> tuple[str, float] | None:
    for m in getattr(field, "metadata", []) or []:
        for attr, op in (("ge", ">="), ("gt", ">")):
            if getattr(m, attr, None) is not None:
                return op, getattr(m, attr)
    return None


def _example(field: Any, name: str) -> str:
    ex = (getattr(field, "examples", None) or [None])[0]
    return f"{name}: {ex}" if ex is not None else f"{name}: ..."


def _message(path: Path, err: dict[str, Any]) -> str:
    loc = tuple(err["loc"])
    key = _key(loc)
    model, field, name = _walk(loc)
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        if name == "api_key":
            return _fail(path, key, "an API key never goes into a sweep file",
                         "export the key in an environment variable and name it with api_key_env")
        near = difflib.get_close_matches(str(name), list(model.model_fields), n=1)
        hint = f"did you mean {near[0]!r}?" if near else f"valid keys: {', '.join(model.model_fields)}"
        return _fail(path, key, "unknown key", f"remove it or rename it; {hint}")
    if kind == "missing":
        return _fail(path, key, "missing", f"add {_example(field, name)}")
    if name is None or field is None:
        return _fail(path, key, err["msg"].lower(), "see the sweep file format in the README")
    ann = field.annotation
    is_list = typing.get_origin(ann) is list or list in map(typing.get_origin, typing.get_args(ann))
    item = isinstance(loc[-1], int) and is_list
    bound = _bound(field) or (_item_bound(ann) if item else None)
    label = name.split("[")[0]
    if kind.startswith("literal") or "enum" in kind:
        choices = " or ".join(str(x) for x in err.get("ctx", {}).get("expected", "").replace("'", "").split(" or "))
        return _fail(path, key, f"expected {choices}, got {_show(value)}",
                     f"write {label}: {choices.split(' or ')[0]}, or remove the key")
    if kind in ("int_type", "int_from_float", "greater_than_equal", "greater_than") and _is_int(ann):
        low = bound[1] if bound else 0
        return _fail(path, key, f"expected an integer >= {low}, got {_show(value)}",
                     f"write e.g. {label}: {_first_example(field, low)}")
    if kind in ("float_type", "greater_than_equal", "greater_than"):
        op, low = bound or (">=", 0)
        return _fail(path, key, f"expected a number {op} {low}, got {_show(value)}",
                     f"write e.g. {_example(field, label)}")
    if kind == "bool_type":
        return _fail(path, key, f"expected true or false, got {_show(value)}", f"write {label}: true")
    if kind in ("model_type", "dict_type"):
        example = (getattr(field, "examples", None) or ["{...}"])[0]
        if item and name == "graphs":
            example = "{name: standard_rag, params: {k: 5}, grid: {k: [1, 5, 10]}}"
        return _fail(path, key, f"expected a table, got {_show(value)}", f"write it as {example}")
    if kind == "too_short" and not item:
        return _fail(path, key, f"expected a non-empty list, got {_show(value)}", f"write e.g. {_example(field, label)}")
    if kind == "list_type" and isinstance(loc[-1], str) and loc[-1] not in model.model_fields:
        return _fail(path, key, f"expected a non-empty list, got {_show(value)}", f"write {loc[-1]}: [1, 5, 10]")
    if kind == "list_type":
        return _fail(path, key, f"expected a list, got {_show(value)}", f"write e.g. {_example(field, label)}")
    if kind in ("string_type", "string_too_short"):
        return _fail(path, key, f"expected a non-empty string, got {_show(value)}", f"write e.g. {_example(field, label)}")
    return _fail(path, key, f"{err['msg'].lower()}, got {_show(value)}", f"write e.g. {_example(field, label)}")


def _is_int(ann: Any) -> bool:
    return ann is int or int in typing.get_args(ann) or any(_is_int(a) for a in typing.get_args(ann)
                                                            if typing.get_origin(a) in (list, Annotated))


def _item_bound(ann: Any) -> tuple[str, float] | None:
    for arg in typing.get_args(ann):
        for m in getattr(arg, "__metadata__", ()):
            if isinstance(m, annotated_types.Ge):
                return ">=", m.ge
        got = _item_bound(arg)
        if got:
            return got
    return None


def _first_example(field: Any, low: float) -> Any:
    ex = (getattr(field, "examples", None) or [None])[0]
    return ex if isinstance(ex, (int, float)) and not isinstance(ex, bool) else int(low)


def _fail(path: Path, key: str, problem: str, fix: str) -> str:
    return f"{path}: {key}: {problem}. Fix: {fix}"


def parse_sweep_file(path: Path, data: dict[str, Any]) -> SweepFile:
    """``data`` as a :class:`SweepFile`; a :class:`SweepError` names the file, key, problem and fix."""
    try:
        return SweepFile.model_validate(data)
    except ValidationError as e:
        errors = e.errors(include_url=False)
        # an unknown key explains more than what follows from it; then the first in file order
        first = next((x for x in errors if x["type"] == "extra_forbidden"), errors[0])
        raise SweepError(_message(path, first)) from None
