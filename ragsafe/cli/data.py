"""CLI subcommands of the data layer: retrieval-eval (the retrieval ceiling of a benchmark)."""

from __future__ import annotations

import json
from pathlib import Path

from ragsafe.cli.common import chroma_args, split_arg, split_of


def _report_json(rep) -> dict:
    return {"info": rep.info, "ks": list(rep.ks), "depth": rep.depth, "overall": rep.overall,
            "by_subspecialty": rep.by_group, "skipped_no_gold": rep.skipped, "missing_gold": rep.missing_gold,
            "questions": rep.rows}


def cmd_retrieval_eval(a) -> int:
    from ragsafe.cli.common import embedder_config
    from ragsafe.corpora.chunking import ChunkParams
    from ragsafe.evals.metrics import retrieval as rev
    from ragsafe.experiments.retrieval import run as retrieval_run

    chunk = ChunkParams(size=a.chunk_size, overlap=a.chunk_overlap, tokenizer=a.chunk_tokenizer)
    common = dict(ks=a.k, split=split_of(a), chroma_path=a.chroma_path, chroma_url=a.chroma_url, chunk=chunk,
                  depth=a.depth, embedder=embedder_config(a))
    reports = [retrieval_run(a.benchmark, a.corpus, **common)]
    if a.distractors:
        reports.append(retrieval_run(a.benchmark, a.corpus, distractors=a.distractors, **common))
    out_md = []
    for rep in reports:
        extra = f" + {', '.join(rep.info['distractors'])}" if rep.info["distractors"] else ""
        title = (f"{rep.info['benchmark']} on {rep.info['corpus']}{extra}: {rep.info['documents']} documents, "
                 f"{rep.info['chunks']} chunks ({rep.info['embedder']}); query = question text; k counts chunks")
        print(title)
        print(rev.table(rep, hits=True))
        out_md += [f"**{title}**", "", rev.table(rep, markdown=True, hits=True), ""]
        if rep.skipped:
            print(f"not scored (no gold_doc_ids): {len(rep.skipped)} question(s): {', '.join(rep.skipped[:10])}")
        for qid, gone in rep.missing_gold.items():
            print(f"warning: {qid}: gold document(s) not in the corpus: {', '.join(gone)}")
        if a.misses:
            top = rep.ks[-1]
            for row in rep.rows:
                if row[f"recall@{top}"] < 1:
                    lost = [g for g in row["gold"] if g not in row["found"] or row["found"][g] > top]
                    print(f"  miss@{top} {row['id']}: {', '.join(lost)} (rank-1 chunk from {row['top_doc']})")
        print()
    if len(reports) == 2:
        delta = rev.compare(reports[0], reports[1])
        shown = [f"{k} {reports[0].overall[k]:.3f} -> {reports[1].overall[k]:.3f} ({delta[k]:+.3f})"
                 for k in rev.table_columns(reports[0].ks)]
        line = f"with distractors ({', '.join(a.distractors)}): " + "; ".join(shown)
        print(line)
        out_md.append(line)
    if a.md:
        Path(a.md).write_text("\n".join(out_md) + "\n")
    if a.json:
        Path(a.json).write_text(json.dumps([_report_json(r) for r in reports], indent=1, default=str) + "\n")
    return 0


def register(sub) -> None:
    p = sub.add_parser("retrieval-eval", help="recall@k / MRR / nDCG of the gold articles with the question as "
                       "query (the retrieval ceiling of standard RAG)")
    p.add_argument("--benchmark", default="demo", help="registered benchmark or a file spec (needs gold_doc_ids)")
    p.add_argument("--k", type=int, nargs="+", default=[1, 5, 10], help="cut-offs in chunks (default 1 5 10)")
    p.add_argument("--depth", type=int, default=None, help="chunks retrieved per question (default: largest k)")
    split_arg(p)
    p.add_argument("--distractors", action="append", default=[],
                   help="also evaluate with this corpus mixed in (e.g. radlabels) and report the drop; repeat")
    p.add_argument("--misses", action="store_true", help="list questions whose gold articles were not all found")
    chroma_args(p)
    p.add_argument("--md", default=None, help="also write the tables as Markdown to this file")
    p.add_argument("--json", default=None, help="also write overall, per-subspecialty and per-question results")
    p.set_defaults(fn=cmd_retrieval_eval)
