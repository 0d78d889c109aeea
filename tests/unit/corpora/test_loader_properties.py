"""Property: every loader, given any file whatsoever, loads it or raises ragsafe's input error
naming the file. Never another exception, never a problem without a file.

Inputs are valid fixture files mutated (truncated, bytes flipped, fields dropped, types swapped,
re-encoded) and plain random bytes. The example database is off and the draw is derandomized (a
fixed seed), so CI sees the same inputs every time. Bounded for CI by
``RAGSAFE_HYPOTHESIS_EXAMPLES`` (default 25 per test); a nightly-style run sets it higher::

    RAGSAFE_HYPOTHESIS_EXAMPLES=2000 python -m pytest -q tests/unit/corpora/test_loader_properties.py

``RAGSAFE_FUZZ_REPORT=PATH`` appends one JSON line per input tried (its class and outcome).
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ragsafe.corpora.documents import check_corpus
from ragsafe.corpora.errors import DataError
from ragsafe.corpora.loaders import load_any
from tests.paths import FIXTURES

FIX = FIXTURES / "data"
EXAMPLES = int(os.environ.get("RAGSAFE_HYPOTHESIS_EXAMPLES", "25"))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

SEEDS = {  # (file name, format forced or None for detection, bytes of a valid file)
    "ragsafe": ("b.jsonl", "ragsafe", b"".join(
        (Path(__file__).resolve().parents[3] / "ragsafe" / "corpora" / "data" / "demo_benchmark" / "chest.jsonl")
        .read_bytes().splitlines(keepends=True)[:3])),
    "mcq-jsonl": ("m.jsonl", "mcq", (FIX / "mcq.jsonl").read_bytes()),
    "mcq-json": ("m.json", "mcq", (FIX / "mcq_list.json").read_bytes()),
    "mirage": ("mirage.json", None, (FIX / "mirage_like.json").read_bytes()),
    "radsafe-csv": ("r.csv", "radsafe-csv", (FIX / "radsafe.csv").read_bytes()),
    "radsafe-unified": ("u.jsonl", "radsafe", (FIX / "radsafe_unified.jsonl").read_bytes()),
    "manifest": ("m.yaml", None, b"format: mcq\nname: x\npath: m.jsonl\nfields: {answer: answer}\n"),
    # the mapped format (written for ragsafe): a manifest over a CSV with option columns and 1-based index answers,
    # and the command line's inline form over JSONL with an options list and text answers
    "mapped-manifest": ("mm.yaml", None, b"format: mapped\npath: t.csv\nmap:\n  question: q\n"
                        b"  options: [opa, opb, opc, opd]\n  answer: cop\n  answer_format: index\n  index_base: 1\n"
                        b"  id: id\n  subspecialty: subject\n"),
    "mapped-inline": ("t.jsonl", None, b"".join(json.dumps(
        {"key": f"t{i}", "stem": f"Which sign fits case {i}?", "choices": ["air bronchogram", "halo", "tree-in-bud"],
         "gold": ["air bronchogram", "halo", "tree-in-bud"][i % 3]}).encode() + b"\n" for i in range(4))),
}
MAPPED_CSV = (b"id,q,opa,opb,opc,opd,cop,subject\n"
              b"1,Which sign suggests a pneumothorax?,deep sulcus,air bronchogram,halo,tree-in-bud,1,chest\n"
              b"2,\"Best first test, suspected appendicitis?\",ultrasound,MRI,plain film,PET,1,abdominal\n"
              b"3,Which artery supplies the SA node?,RCA,LAD,LCx,OM1,1,cardiac\n")
MAPPED_INLINE = "question=stem,options=choices,answer=gold,answer_format=text,id=key"
LABELS = (FIX / "radsafe_labels.json").read_bytes()
CORPUS_MD = b"---\nid: doc-1\ntitle: A title\n---\n# Heading\n\nBody text of the document.\n"
CORPUS_DUMP = (FIX / "corpus_dump.jsonl").read_bytes()
ENCODINGS = ["utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252", "utf-8-sig"]


def _swap(v, rnd: random.Random):
    choices = [None, 0, -1, 1.5, True, "", "x" * rnd.randint(0, 50), [], [1, [2]], {}, {"A": None}]
    return rnd.choice([c for c in choices if type(c) is not type(v)] or choices)


def _mutate_json_value(data, rnd: random.Random, drop: bool):
    """Drop one key (or swap one value's type) somewhere inside ``data``."""
    path, node = [], data
    while isinstance(node, (dict, list)) and node and rnd.random() < 0.7:
        key = rnd.choice(list(node)) if isinstance(node, dict) else rnd.randrange(len(node))
        path.append((node, key))
        node = node[key]
    if not path:
        return _swap(data, rnd)
    parent, key = path[-1]
    if drop and isinstance(parent, dict):
        del parent[key]
    else:
        parent[key] = _swap(parent[key], rnd)
    return data


def mutate(data: bytes, how: str, rnd: random.Random) -> bytes:
    if how == "truncate":
        return data[: rnd.randrange(len(data) + 1)]
    if how == "flip":
        b = bytearray(data)
        for _ in range(rnd.randint(1, 8)):
            if b:
                b[rnd.randrange(len(b))] = rnd.randrange(256)
        return bytes(b)
    if how in ("drop", "swap"):
        text = data.decode("utf-8")
        if text.lstrip().startswith(("{", "[")) and "\n{" not in text.strip():
            try:
                return json.dumps(_mutate_json_value(json.loads(text), rnd, how == "drop")).encode()
            except ValueError:
                return data
        lines = text.splitlines(keepends=True)
        out = []
        for ln in lines:
            try:
                obj = json.loads(ln)
            except ValueError:
                out.append(ln)
                continue
            out.append(json.dumps(_mutate_json_value(obj, rnd, how == "drop")) + "\n" if rnd.random() < 0.6 else ln)
        if not any(ln.lstrip().startswith("{") for ln in lines):  # CSV / YAML: drop or swap a cell
            cells = text.split(",")
            if len(cells) > 2:
                i = rnd.randrange(len(cells))
                cells[i] = "" if how == "drop" else rnd.choice(['"', "[1", "\x00", "9" * 5000, "{"])
            return ",".join(cells).encode()
        return "".join(out).encode()
    if how == "encoding":
        enc = rnd.choice(ENCODINGS)
        try:
            return data.decode("utf-8").encode(enc)
        except UnicodeError:
            return data.decode("utf-8").encode(enc, errors="replace")
    raise AssertionError(how)


MUTATIONS = ["truncate", "flip", "drop", "swap", "encoding"]


def _record(cls: str, outcome: str) -> None:
    path = os.environ.get("RAGSAFE_FUZZ_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"class": cls, "outcome": outcome}) + "\n")


def check_benchmark(folder: Path, spec: str, fmt: str | None, names: set[str], cls: str) -> None:
    try:
        bench = load_any(spec, fmt) if fmt else load_any(spec)
    except DataError as e:
        assert Path(e.file).name in names or Path(e.file).parent.name == folder.name, e
        _record(cls, "refused")
        return
    for p in bench.problems:
        assert p.file and (Path(p.file).name in names or folder.name in p.file), p
        assert p.message
    assert bench.n_records >= len(bench.questions)
    _record(cls, "loaded" if bench.questions else "no questions, errors named")


@pytest.mark.parametrize("kind", sorted(SEEDS))
@given(how=st.sampled_from(MUTATIONS), seed=st.integers(0, 2**32 - 1))
@PROPERTY
def test_mutated_benchmark_files_load_or_raise_an_input_error(kind, how, seed):
    name, fmt, data = SEEDS[kind]
    rnd = random.Random(seed)
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        names = {name}
        if kind == "manifest":
            (folder / "m.jsonl").write_bytes(mutate((FIX / "mcq.jsonl").read_bytes(), how, rnd))
            names.add("m.jsonl")
        if kind == "mapped-manifest":
            (folder / "t.csv").write_bytes(mutate(MAPPED_CSV, how, rnd))
            names.add("t.csv")
        (folder / name).write_bytes(mutate(data, how, rnd))
        spec = f"mapped:{folder / name}#{MAPPED_INLINE}" if kind == "mapped-inline" else str(folder / name)
        check_benchmark(folder, spec, fmt, names, f"{kind}/{how}")
        if kind == "radsafe-unified":  # and joined with its (mutated) labels file
            (folder / "l.json").write_bytes(mutate(LABELS, rnd.choice(MUTATIONS), rnd))
            check_benchmark(folder, f"{folder / name}+{folder / 'l.json'}", "radsafe", names | {"l.json"},
                            f"radsafe-pair/{how}")


@pytest.mark.parametrize("suffix, fmt", [(".jsonl", None), (".json", None), (".csv", None), (".yaml", None),
                                         (".jsonl", "radsafe"), (".json", "mcq")])
@given(data=st.binary(max_size=2048))
@PROPERTY
def test_random_bytes_load_or_raise_an_input_error(suffix, fmt, data):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / f"random{suffix}"
        p.write_bytes(data)
        check_benchmark(Path(d), str(p), fmt, {p.name}, f"random-bytes{suffix}{'/' + fmt if fmt else ''}")


@given(how=st.sampled_from(MUTATIONS + ["random"]), seed=st.integers(0, 2**32 - 1), dump=st.booleans())
@PROPERTY
def test_mutated_corpora_load_or_raise_an_input_error(how, seed, dump):
    rnd = random.Random(seed)
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / "corpus"
        folder.mkdir()
        seed_bytes = CORPUS_DUMP if dump else CORPUS_MD
        data = rnd.randbytes(rnd.randint(0, 1024)) if how == "random" else mutate(seed_bytes, how, rnd)
        if dump:
            spec = folder / "dump.jsonl"
            spec.write_bytes(data)
        else:
            spec = folder
            (folder / "a.md").write_bytes(data)
            (folder / "b.md").write_bytes(CORPUS_MD.replace(b"doc-1", b"doc-2"))
        cls = f"corpus-{'dump' if dump else 'folder'}/{how}"
        try:
            chk = check_corpus(str(spec))
        except DataError as e:
            assert folder.name in e.file, e
            _record(cls, "refused")
            return
        for p in chk.problems:
            assert p.file and folder.name in p.file, p
        if not dump:
            assert "doc-2" in [doc.metadata["doc_id"] for doc in chk.docs]  # a bad file never takes others down
        _record(cls, "loaded" if chk.docs and not chk.errors else "errors named")


@pytest.mark.parametrize("kind", ["mapped-manifest", "mapped-inline"])
def test_the_mapped_seeds_are_valid_before_mutation(kind, tmp_path):
    name, _, data = SEEDS[kind]
    (tmp_path / name).write_bytes(data)
    (tmp_path / "t.csv").write_bytes(MAPPED_CSV)
    spec = f"mapped:{tmp_path / name}#{MAPPED_INLINE}" if kind == "mapped-inline" else str(tmp_path / name)
    bench = load_any(spec)
    assert len(bench.questions) == (3 if kind == "mapped-manifest" else 4) and not bench.errors
    q = bench.questions[0]
    assert q.answer == "A" and len(q.options) == (4 if kind == "mapped-manifest" else 3)
