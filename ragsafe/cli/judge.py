"""CLI: ``ragsafe rejudge`` — the LLM judge re-reads a run's raw outputs (the paper's answer extraction)."""

from __future__ import annotations


def judge_args(p, *, required: bool) -> None:
    g = p.add_argument_group("judge")
    g.add_argument("--judge-base-url", default=None,
                   help="the judge's OpenAI-compatible base URL, or 'local' (default: the run's endpoint)")
    g.add_argument("--judge-model", required=required, default=None,
                   help="judge model id (with 'local': an embedded model)" + ("" if required else
                                                                                " (default: the run's model)"))
    g.add_argument("--judge-api-key-env", default=None, help="environment variable holding the judge's API key")
    g.add_argument("--judge-concurrency", type=int, default=4, help="records judged at once")


def run_judge(a, run_dir, progress=print) -> dict:
    from ragsafe.experiments.rejudge import rejudge_run

    return rejudge_run(run_dir, base_url=a.judge_base_url, model=a.judge_model, api_key_env=a.judge_api_key_env,
                       concurrency=a.judge_concurrency,
                       cache="off" if getattr(a, "no_cache", False) else
                       "refresh" if getattr(a, "refresh_cache", False) else "use", progress=progress)


def cmd_rejudge(a) -> int:
    from ragsafe.config import ConfigError
    from ragsafe.evals.reports.tables import judge_tables
    from ragsafe.evals.reports.text import fixed_width
    from ragsafe.evals.score import score_run_dir
    from ragsafe.llm.errors import EndpointUnreachable

    try:
        stats = run_judge(a, a.run_dir)
    except EndpointUnreachable as e:
        raise ConfigError(str(e)) from None
    summary = score_run_dir(a.run_dir, letters="judge")
    for t in judge_tables(summary):
        print(f"\n{t.title}:")
        print("\n".join(fixed_width(t)))
    print(f"\nscore with the judge's letters: ragsafe score {a.run_dir} --letters judge")
    return 1 if stats["failed"] else 0


def register(sub) -> None:
    p = sub.add_parser("rejudge", help="re-read every stored raw output with an LLM judge (letters beside the strict ones)")
    p.add_argument("run_dir", help="the run folder whose raw outputs the judge re-reads")
    judge_args(p, required=True)
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the LLM response cache")
    p.add_argument("--refresh-cache", action="store_true", help="ask the server for everything; overwrite the cache")
    p.set_defaults(fn=cmd_rejudge)
