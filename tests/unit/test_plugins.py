"""Plugins: a file or module named with --plugin, and installed packages' ragsafe.plugins entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from ragsafe.cli.main import main
from ragsafe.config import ConfigError
from ragsafe.plugins import PluginError, load_plugin
from tests.paths import FIXTURES, ROOT

GRAPH_PLUGIN = textwrap.dedent('''
    """A one-node graph registered by a plugin."""
    from langgraph.graph import END, START, StateGraph
    from ragsafe.graphs import Deps, OneAnswer, State, graph
    from ragsafe.graphs.base import make_answer_node

    @graph("{name}", params=OneAnswer)
    def build(deps: Deps, params: OneAnswer):
        b = StateGraph(State)
        b.add_node("answer", make_answer_node(deps))
        b.add_edge(START, "answer")
        b.add_edge("answer", END)
        return b.compile()
''')


def test_a_plugin_file_registers_its_graph_once(tmp_path):
    from ragsafe.graphs import graphs

    f = tmp_path / "g.py"
    f.write_text(GRAPH_PLUGIN.format(name="plugin_file_graph"))
    assert "plugin_file_graph" not in graphs
    m1 = load_plugin(str(f))
    m2 = load_plugin(str(f))  # a second load is a no-op (no "registered twice")
    assert m1 is m2
    assert graphs.get("plugin_file_graph").params.__name__ == "OneAnswer"


def test_a_plugin_module_by_name(tmp_path, monkeypatch):
    from ragsafe.graphs import graphs

    (tmp_path / "my_plugin_pkg").mkdir()
    (tmp_path / "my_plugin_pkg" / "__init__.py").write_text(GRAPH_PLUGIN.format(name="plugin_module_graph"))
    monkeypatch.syspath_prepend(str(tmp_path))
    load_plugin("my_plugin_pkg")
    assert "plugin_module_graph" in graphs


def test_plugin_errors_name_the_plugin_and_the_cause(tmp_path):
    with pytest.raises(PluginError, match=r"--plugin nowhere/x\.py: no such file"):
        load_plugin("nowhere/x.py")
    with pytest.raises(PluginError, match=r"--plugin no_such_plugin_mod: no module named 'no_such_plugin_mod'"):
        load_plugin("no_such_plugin_mod")
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n\nraise RuntimeError('boom')\n")
    with pytest.raises(PluginError) as e:
        load_plugin(str(bad))
    assert str(bad) in str(e.value) and "RuntimeError: boom" in str(e.value) and f"{bad}:3" in str(e.value)
    missing_dep = tmp_path / "dep.py"
    missing_dep.write_text("import not_installed_anywhere_xyz\n")
    with pytest.raises(PluginError, match="failed while loading: ModuleNotFoundError.*not_installed_anywhere_xyz"):
        load_plugin(str(missing_dep))
    # a fixed file loads in the same process
    bad.write_text("X = 1\n")
    assert load_plugin(str(bad)).X == 1
    assert isinstance(PluginError("x"), ConfigError)  # the CLI prints it as an error line, no traceback


def test_cli_plugin_error_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.py"
    bad.write_text("raise ValueError('no')\n")
    assert main(["graphs", "--plugin", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ragsafe: error: --plugin ") and "ValueError: no" in err and "Traceback" not in err


def test_graphs_and_validate_take_plugin(tmp_path, capsys):
    g = tmp_path / "g.py"
    g.write_text(GRAPH_PLUGIN.format(name="plugin_cli_graph"))
    assert main(["graphs", "--plugin", str(g)]) == 0
    assert "plugin_cli_graph" in capsys.readouterr().out
    assert main(["graphs", "show", "plugin_cli_graph", "--graph-module", str(g)]) == 0  # the older flag
    # a benchmark format registered by a plugin, used by `validate FORMAT:PATH`
    fmt = tmp_path / "fmt.py"
    fmt.write_text(textwrap.dedent('''
        from ragsafe.corpora.formats.base import Loader, loaders

        def load(files, name=None, **options):
            return loaders.get("mcq").load(files, name, **options)

        loaders.add("mcq-plugin", Loader("mcq-plugin", load, "FILE.jsonl", doc="mcq, registered by a plugin"))
    '''))
    data = str(FIXTURES / "data" / "mcq.jsonl")
    capsys.readouterr()
    assert main(["validate", f"mcq-plugin:{data}"]) != 0  # not registered without the plugin
    seen = capsys.readouterr()
    assert "mcq-plugin" in seen.out + seen.err
    want = main(["validate", f"mcq:{data}"])
    want_out = capsys.readouterr().out
    assert main(["validate", "--plugin", str(fmt), f"mcq-plugin:{data}"]) == want
    assert capsys.readouterr().out == want_out


def test_sweep_dry_run_with_a_plugin_graph(tmp_path, capsys):
    g = tmp_path / "g.py"
    g.write_text(GRAPH_PLUGIN.format(name="plugin_sweep_graph"))
    sw = tmp_path / "s.yaml"
    sw.write_text("endpoints: [{model: m, base_url: 'http://127.0.0.1:9/v1'}]\nlimit: 2\n"
                  "graphs: [plugin_sweep_graph, closed_book]\n")
    assert main(["sweep", str(sw), "--plugin", str(g), "--dry-run", "--out", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().out
    assert "plugin_sweep_graph" in out


# -- installed packages: the ragsafe.plugins entry-point group --------------------------------------

def _installed_by_path(tmp_path, value: str, module_src: str, module: str = "ep_plugin_mod"):
    """A distribution 'installed' by putting its module and its .dist-info folder on sys.path."""
    site = tmp_path / "site"
    (site / "ragsafe_ep_demo-0.1.dist-info").mkdir(parents=True)
    (site / "ragsafe_ep_demo-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: ragsafe-ep-demo\nVersion: 0.1\n")
    (site / "ragsafe_ep_demo-0.1.dist-info" / "entry_points.txt").write_text(
        f"[ragsafe.plugins]\ndemo = {value}\n")
    (site / f"{module}.py").write_text(module_src)
    return site


def _run_py(site, code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(site)])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env)


def test_an_installed_plugin_is_loaded_on_first_lookup(tmp_path):
    src = GRAPH_PLUGIN.format(name="ep_graph") + textwrap.dedent('''
        from ragsafe.evals.metrics.registry import metric

        @metric("ep_null_rate", higher_is_better=False)
        def ep_null_rate(s, q, opts):
            return float(s.get("letter") is None)
    ''')
    site = _installed_by_path(tmp_path, "ep_plugin_mod", src)
    res = _run_py(site, "import json\nfrom ragsafe.graphs.base import graphs\n"
                        "from ragsafe.evals.metrics.registry import metrics\n"
                        "from ragsafe.plugins import installed\n"
                        "print(json.dumps([graphs.get('ep_graph').name, metrics.get('ep_null_rate').name, installed()]))")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.splitlines()[-1]) == ["ep_graph", "ep_null_rate", ["demo = ep_plugin_mod"]]


def test_an_installed_plugin_function_is_called_once(tmp_path):
    src = textwrap.dedent('''
        CALLS = []

        def register():
            from ragsafe.corpora.benchmark import benchmarks
            CALLS.append(1)
            benchmarks.add("ep_bench", lambda: None)
    ''')
    site = _installed_by_path(tmp_path, "ep_plugin_fn:register", src, module="ep_plugin_fn")
    res = _run_py(site, "from ragsafe.corpora.benchmark import benchmarks\nfrom ragsafe.graphs.base import graphs\n"
                        "import ep_plugin_fn\nprint('ep_bench' in benchmarks, 'closed_book' in graphs, "
                        "len(ep_plugin_fn.CALLS))")
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["True", "True", "1"]


def test_a_broken_installed_plugin_names_its_package(tmp_path):
    site = _installed_by_path(tmp_path, "ep_broken_mod", "raise ImportError('needs torch 9')\n", module="ep_broken_mod")
    res = _run_py(site, "from ragsafe.graphs.base import graphs\ntry:\n    graphs.get('closed_book')\n"
                        "except Exception as e:\n    print(type(e).__name__, e)\n")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("PluginError installed plugin demo = 'ep_broken_mod' (package ragsafe-ep-demo")
    assert "needs torch 9" in res.stdout
