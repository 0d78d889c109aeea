"""Sweep files, dry runs, interleaved execution over endpoints, shards and their merge, the run index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ragsafe.cli.main import main
from ragsafe.config import ConfigError
from ragsafe.experiments.index import RunIndex
from ragsafe.experiments.shards import Shard, merge_shards
from ragsafe.experiments.store import RunStore
from ragsafe.experiments.sweep import load_sweep, run_sweep
from tests.fault_server import FaultServer


def endpoint(srv: FaultServer, **kw) -> dict:
    return {"name": kw.pop("name", "fake"), "model": "fake", "base_url": srv.base_url, "concurrency": 2,
            "backoff_initial": 0.01, **kw}


def write(tmp_path: Path, data: dict, name: str = "sweep.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def base(tmp_path: Path, srv: FaultServer, **kw) -> dict:
    return {"name": "t", "benchmark": "demo", "limit": 6, "out": str(tmp_path / "runs"), "seeds": [0],
            "endpoints": [endpoint(srv)], "graphs": ["closed_book", "clean_evidence"], **kw}


def comparable(run_dir: Path) -> dict:
    """What must agree between two runs of one config: every answer, and the metrics."""
    recs = {(r["variant"], r["question_id"]): (r["letter"], r["correct"], r["raw_output"], r["error"])
            for r in RunStore(run_dir).samples()}
    summary = RunStore(run_dir).read_summary()
    metrics = {v: c.get("metrics") for v, c in summary["variants"].items()}
    return {"records": recs, "metrics": metrics}


# -- bad files ---------------------------------------------------------------------------------

BAD = [
    ({"graph": ["closed_book"]}, "graph", "did you mean 'graphs'"),
    ({"endpoints": [{"model": "m", "base_url": "http://127.0.0.1:1/v1", "concurrency": "eight"}]},
     "endpoints[0].concurrency", "integer"),
    ({"graphs": ["closed_bok"]}, "graphs[0]", "did you mean 'closed_book'"),
    ({"graphs": [{"name": "standard_rag", "params": {"kk": 3}}]}, "graphs[0]", "unknown parameter"),
    ({"graphs": [{"name": "standard_rag", "grid": {"k": 5}}]}, "graphs[0].grid.k", "non-empty list"),
    ({"graphs": [{"name": "standard_rag", "grid": {"k": ["x"]}}]}, "graphs[0]", "standard_rag.k"),
    ({"endpoints": [{"model": "m", "base_url": "http://127.0.0.1:1/v1", "api_key": "sk-x"}]},
     "endpoints[0].api_key", "api_key_env"),
    ({"endpoints": [{"base_url": "http://127.0.0.1:1/v1"}]}, "endpoints[0].model", "model id"),
    ({"endpoints": [{"model": "m", "base_url": "127.0.0.1:8000"}]}, "endpoints[0].base_url", "http"),
    ({"seeds": [0, 0]}, "seeds", "once"),
    ({"benchmark": "radsafe-9000"}, "benchmark", "registered benchmark"),
    ({"corpus": "no/such/folder"}, "corpus", "folder of .md/.txt"),
    ({"split": "train"}, "split", "dev or test"),
    ({"self_consistency": {"n": 5}}, "self_consistency.over", "list the graphs"),
    ({"endpoints": [{"model": "m", "base_url": "http://127.0.0.1:1/v1", "name": "a"},
                    {"model": "m", "base_url": "http://127.0.0.1:2/v1", "name": "a"}]}, "endpoints[1].name", "twice"),
]


@pytest.mark.parametrize("patch,key,fix", BAD)
def test_bad_sweep_files_name_file_key_and_fix(tmp_path, patch, key, fix):
    data = {"benchmark": "demo", "endpoints": [{"model": "m", "base_url": "http://127.0.0.1:1/v1"}],
            "graphs": ["closed_book"]}
    data.update(patch)
    p = write(tmp_path, data)
    with pytest.raises(ConfigError) as e:
        load_sweep(p)
    msg = str(e.value)
    assert str(p) in msg and key in msg and "Fix:" in msg and fix in msg, msg


def test_syntax_errors_and_file_types(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("graphs: [closed_book\nendpoints: {")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_sweep(p)
    q = tmp_path / "s.toml"
    q.write_text("graphs = [closed_book]")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_sweep(q)
    r = tmp_path / "s.json"
    r.write_text("{}")
    with pytest.raises(ConfigError, match=r"\.yaml, \.yml or \.toml"):
        load_sweep(r)


def test_yaml_and_toml_give_the_same_runs(tmp_path):
    y = write(tmp_path, {"benchmark": "demo", "limit": 3, "seeds": [1, 2],
                         "endpoints": [{"model": "m", "base_url": "http://127.0.0.1:9/v1", "concurrency": 3}],
                         "graphs": ["closed_book", {"name": "standard_rag", "grid": {"k": [1, 3]}}],
                         "self_consistency": {"over": ["closed_book"], "n": [2, 4], "temperature": 0.5}})
    t = tmp_path / "s.toml"
    t.write_text("""
benchmark = "demo"
limit = 3
seeds = [1, 2]
graphs = ["closed_book", {name = "standard_rag", grid = {k = [1, 3]}}]

[[endpoints]]
model = "m"
base_url = "http://127.0.0.1:9/v1"
concurrency = 3

[self_consistency]
over = ["closed_book"]
n = [2, 4]
temperature = 0.5
""")
    a, b = load_sweep(y), load_sweep(t)
    assert a.graph_specs == b.graph_specs == [
        "closed_book", "standard_rag[k=1]", "standard_rag[k=3]",
        "self_consistency[inner=closed_book,n=2,temperature=0.5]",
        "self_consistency[inner=closed_book,n=4,temperature=0.5]"]
    ha = [j.plan["config_hash"] for j in a.jobs()]
    hb = [j.plan["config_hash"] for j in b.jobs()]
    assert ha == hb and len(set(ha)) == 2  # one run per seed


# -- dry run -------------------------------------------------------------------------------------

def test_dry_run_counts_cells_and_calls_and_writes_nothing(tmp_path, capsys):
    with FaultServer() as srv:
        p = write(tmp_path, base(tmp_path, srv, seeds=[0, 1], graphs=["closed_book"],
                                 self_consistency={"over": ["closed_book"], "n": 3}))
        assert main(["sweep", str(p), "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "= 4 cells" in out
        # per seed: closed_book 6 calls, self_consistency 6 x (1 greedy + 3 samples)
        assert "LLM calls expected: 60" in out
        assert srv.requests == 0
        assert not (tmp_path / "runs").exists()
        assert main(["sweep", str(p), "--dry-run", "--shard", "2/3", "--json"]) == 0
        got = json.loads(capsys.readouterr().out)
        assert {c["questions"] for c in got["cells"]} == {2}
        assert got["totals"]["calls_min"] == 20


# -- execution -------------------------------------------------------------------------------------

def test_sweep_spreads_requests_over_endpoints_and_replicas_within_bounds(tmp_path):
    with FaultServer(latency=0.03) as a, FaultServer(latency=0.03) as b, FaultServer(latency=0.03) as c:
        data = base(tmp_path, a, limit=12, seeds=[0, 1], endpoints=[
            endpoint(a, name="one", concurrency=2),
            endpoint(b, name="two", concurrency=3, replicas=[c.base_url])])
        dirs = run_sweep(load_sweep(write(tmp_path, data)), progress=lambda m: None)
        assert len(dirs) == 4  # 2 endpoints x 2 seeds
        for d in dirs:
            assert len(RunStore(d).samples()) == 2 * 12
        assert a.answered == 2 * 2 * 12 and b.answered + c.answered == 2 * 2 * 12
        assert a.max_in_flight == 2  # saturated, never above its bound
        assert b.max_in_flight <= 3 and c.max_in_flight <= 3
        assert b.answered >= 12 and c.answered >= 12  # both replicas carried load


def test_shard_slices_partition_the_questions():
    qs = list(range(11))
    parts = [Shard(i, 3).take(qs) for i in (1, 2, 3)]
    assert sorted(x for p in parts for x in p) == qs
    assert [len(p) for p in parts] == [4, 4, 3]
    for bad in ("0/3", "4/3", "1-3", "a/b", "1/0"):
        with pytest.raises(ConfigError):
            Shard.parse(bad)


def test_shards_merged_equal_an_unsharded_run(tmp_path):
    with FaultServer() as srv:
        data = base(tmp_path, srv, limit=7, seeds=[0, 3],
                    graphs=["closed_book", "clean_evidence"],
                    self_consistency={"over": ["closed_book"], "n": 2})
        p = write(tmp_path, data)
        sweep = load_sweep(p)
        whole = run_sweep(sweep, out=str(tmp_path / "whole"), cache="off", progress=lambda m: None)
        for i in (1, 2, 3):
            assert main(["sweep", str(p), "--shard", f"{i}/3", "--out", str(tmp_path / f"m{i}"), "--no-cache"]) == 0
        with pytest.raises(ConfigError, match="3/3 missing"):
            merge_shards([tmp_path / "m1", tmp_path / "m2"], tmp_path / "merged")
        assert main(["runs", "merge", str(tmp_path / "m1"), str(tmp_path / "m2"), str(tmp_path / "m3"),
                     "--out", str(tmp_path / "merged")]) == 0
        for d in whole:
            m = tmp_path / "merged" / d.name
            assert comparable(m) == comparable(d)
            assert RunStore(m).line_count() == len(RunStore(d).samples())
        # the merged folder is the unsharded run: running the sweep there computes nothing
        n = srv.requests
        run_sweep(sweep, out=str(tmp_path / "merged"), cache="off", progress=lambda m: None)
        assert srv.requests == n


def test_runs_index_lists_filters_and_shows(tmp_path, capsys):
    with FaultServer() as a, FaultServer(models=("other",)) as b:
        data = base(tmp_path, a, limit=3, endpoints=[endpoint(a, name="a"),
                                                    {**endpoint(b, name="b"), "model": "other"}])
        data["graphs"] = ["closed_book"]
        run_sweep(load_sweep(write(tmp_path, data)), progress=lambda m: None)
        data2 = {**data, "endpoints": [endpoint(a, name="a")], "graphs": ["clean_evidence"]}
        run_sweep(load_sweep(write(tmp_path, data2, "two.yaml")), progress=lambda m: None)
    root = tmp_path / "runs"
    idx = RunIndex(root)
    assert len(idx.list()) == 3
    assert {r["model"] for r in idx.list(model="other")} == {"other"}
    assert len(idx.list(graph="clean_evidence")) == 1
    assert len(idx.list(graph="closed_book")) == 2
    assert len(idx.list(since="2000-01-01")) == 3 and idx.list(until="2000-01-01") == []
    assert all(r["status"] == "complete" for r in idx.list())
    with pytest.raises(ConfigError, match="YYYY-MM-DD"):
        idx.list(since="yesterday")
    assert main(["runs", "list", "--root", str(root), "--graph", "clean_evidence"]) == 0
    out = capsys.readouterr().out
    assert "clean_evidence" in out and out.count("run-") == 1
    folder = idx.list(graph="clean_evidence")[0]["folder"]
    assert main(["runs", "show", folder[4:10], "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert folder in out and "3/3" in out and "accuracy" in out
    # a folder removed by hand leaves the index at the next listing
    import shutil

    shutil.rmtree(root / folder)
    assert len(idx.list()) == 2
