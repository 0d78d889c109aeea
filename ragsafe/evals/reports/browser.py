"""The report's sample browser: every (graph, question) behind the numbers, filterable, offline.

One section of the static HTML page. The samples travel as one JSON block inside the page and a
small inline script renders one page of rows at a time (``PAGE`` rows), and a row's details only
when it is opened, so a report of thousands of samples stays usable. Nothing is loaded from the
network.

Per sample: the question and its options with their labels (H high-risk, U unsafe, C contradicts),
the context the model saw (retrieved chunks with rank, document and score, and their text when the
corpus could be read; or the evidence; and the exact prompt messages), the raw output, the parsed
letter (strict, and the judge's when the run was re-judged), self-consistency ballots, and the trace
of agent steps with timings and tokens. Filters: graph, wrong, high-risk, unsafe, changed between
graphs (the question's answers differ across the graphs shown), attribution category.
"""

from __future__ import annotations

import html
import json
from typing import Any

from ragsafe.corpora.schema import Question
from ragsafe.evals import attribution
from ragsafe.evals.metrics.self_consistency import ballots_of
from ragsafe.records import SampleRecord, sample_view

PAGE = 50
"""Rows rendered per page."""
TEXT_CAP = 2000
"""Characters kept of one chunk, evidence text or raw output (the rest is cut, marked with an ellipsis)."""


def _cap(text: Any) -> str | None:
    if text is None:
        return None
    s = str(text)
    return s if len(s) <= TEXT_CAP else s[:TEXT_CAP] + " …"


def _flags(q: Question, letter: str) -> str:
    lab = (q.labels or {}).get(letter)
    if lab is None:
        return ""
    return "".join(c for c, k in (("H", "high_risk"), ("U", "unsafe"), ("C", "contradicts")) if getattr(lab, k, 0))


def _trace(rec: SampleRecord) -> list[dict]:
    out = []
    for step in rec.trace or []:
        calls = step.llm_calls or []
        ret = step.retrieval
        out.append({"node": step.node, "role": step.role, "s": step.seconds,
                    "calls": len(calls), "ptok": sum(c.prompt_tokens or 0 for c in calls),
                    "ctok": sum(c.completion_tokens or 0 for c in calls),
                    "query": _cap(ret.query) if ret else None, "hits": len(ret.hits or []) if ret else None})
    return out


def _context(rec: SampleRecord, q: Question, chunk_text: Any) -> dict:
    sources = [t.source for t in rec.trace or [] if t.node == "context" and t.source]
    evidence = {s: _cap(getattr(q, s, None)) for s in sources if s in ("evidence_clean", "evidence_conflict",
                                                                       "agentic_report")}
    chunks = []
    for h in rec.retrieved or []:
        text = h.text
        if text is None and chunk_text is not None and h.chunk_id:
            text = chunk_text(h.chunk_id)
        chunks.append({"rank": h.rank, "doc": h.doc_id, "chunk": h.chunk_id, "score": h.score, "text": _cap(text)})
    # prompt messages are plain chat messages (role, content), as the LLM was sent them
    messages = [{"role": m.get("role"), "content": _cap(m.get("content"))} for m in rec.messages or []]
    return {"evidence": evidence, "chunks": chunks, "messages": messages}


def sample_rows(arms: list, questions: list[Question], judge: dict[tuple[str, str], str | None] | None = None
                ) -> list[dict]:
    """One plain dict per (arm, question) with everything the browser shows (JSON-serialisable)."""
    by_q: dict[str, dict[str, str | None]] = {}
    for arm in arms:
        for q in questions:
            rec = arm.records.get(q.id)
            if rec is not None:
                by_q.setdefault(q.id, {})[arm.key] = sample_view(rec).letter
    rows = []
    for arm in arms:
        for q in questions:
            rec = arm.records.get(q.id)
            if rec is None:
                continue
            rec = sample_view(rec)
            scored = rec.letter  # the letter the summary scores (the judge's with --letters judge)
            letter = rec.letter_strict if rec.answer_source == "judge" else scored
            wrong = scored != q.answer
            cls = attribution.classify(rec, q, arm.chunk_text)
            rows.append({
                "arm": arm.key, "qid": q.id, "question": _cap(q.question), "answer": q.answer,
                "options": [[k, _cap(v), _flags(q, k)] for k, v in q.options.items()],
                "letter": letter, "judge": (judge or {}).get((arm.key, q.id)),
                "wrong": wrong, "high_risk": bool(wrong and scored and "H" in _flags(q, scored)),
                "unsafe": bool(wrong and scored and "U" in _flags(q, scored)),
                "changed": len(set(by_q.get(q.id, {}).values())) > 1,
                "category": cls.get("category") or ("correct" if not wrong else None),
                "raw": _cap(rec.raw_output), "error": rec.error.kind if rec.error else None,
                "ballots": ballots_of(rec, q), "seconds": rec.seconds,
                "context": _context(rec, q, arm.chunk_text), "trace": _trace(rec)})
    return rows


_CSS = """
#samples .filters label{margin-right:12px;font-size:13px} #samples .filters select{font-size:13px}
#samples-table td{white-space:normal;max-width:520px} #samples-table tr.row{cursor:pointer}
#samples-table tr.row:hover td{background:#eef3fb} #samples .pager{margin:8px 0;font-size:13px}
#samples .pager button{margin-right:6px} .sb-detail{font-size:12.5px;white-space:normal}
.sb-detail pre{white-space:pre-wrap;background:#f6f8fb;padding:6px;border:1px solid #e4e8ee;max-height:320px;overflow:auto}
.sb-ok{color:#1d6b35} .sb-bad{color:#a3231a;font-weight:600} .sb-flag{color:#8a3b12;font-size:11px}
"""

_JS = r"""
(function(){
  var data = JSON.parse(document.getElementById('samples-data').textContent);
  var PAGE = parseInt(document.getElementById('samples').getAttribute('data-page'), 10);
  var page = 0, shown = data;
  function el(tag, attrs, text){ var e = document.createElement(tag);
    for (var k in (attrs||{})) e.setAttribute(k, attrs[k]); if (text != null) e.textContent = text; return e; }
  var f = {arm: document.getElementById('f-arm'), cat: document.getElementById('f-cat'),
           wrong: document.getElementById('f-wrong'), hr: document.getElementById('f-hr'),
           unsafe: document.getElementById('f-unsafe'), changed: document.getElementById('f-changed')};
  function fill(sel, values){ values.forEach(function(v){ sel.appendChild(el('option', {value: v}, v)); }); }
  function uniq(key){ var s = {}; data.forEach(function(r){ if (r[key] != null) s[r[key]] = 1; }); return Object.keys(s).sort(); }
  fill(f.arm, uniq('arm')); fill(f.cat, uniq('category'));
  function keep(r){
    return (!f.arm.value || r.arm === f.arm.value) && (!f.cat.value || r.category === f.cat.value) &&
      (!f.wrong.checked || r.wrong) && (!f.hr.checked || r.high_risk) && (!f.unsafe.checked || r.unsafe) &&
      (!f.changed.checked || r.changed);
  }
  function detail(r){
    var d = el('div', {'class': 'sb-detail'});
    d.appendChild(el('p', null, r.question));
    var ul = el('ul');
    r.options.forEach(function(o){ var li = el('li', null, o[0] + '. ' + o[1] + (o[0] === r.answer ? '  (answer)' : ''));
      if (o[2]) li.appendChild(el('span', {'class': 'sb-flag'}, '  [' + o[2] + ']')); ul.appendChild(li); });
    d.appendChild(ul);
    d.appendChild(el('p', null, 'letter (strict): ' + (r.letter || 'null') + (r.judge !== undefined && r.judge !== null ?
      '   judge: ' + r.judge : '') + (r.error ? '   error: ' + r.error : '') + '   attribution: ' + (r.category || '-')));
    if (r.ballots) d.appendChild(el('p', null, 'self-consistency ballots: ' + r.ballots.map(function(b){ return b || 'null'; }).join(' ')));
    d.appendChild(el('p', null, 'raw output:')); d.appendChild(el('pre', null, r.raw == null ? '' : r.raw));
    var c = r.context;
    Object.keys(c.evidence).forEach(function(k){ d.appendChild(el('p', null, k + ':')); d.appendChild(el('pre', null, c.evidence[k] || '')); });
    if (c.chunks.length){ d.appendChild(el('p', null, 'retrieved chunks:'));
      c.chunks.forEach(function(h){ d.appendChild(el('pre', null, '#' + h.rank + ' ' + h.doc + ' (' + h.chunk + ', score ' +
        (h.score == null ? '?' : Number(h.score).toFixed(3)) + ')' + (h.text ? '\n' + h.text : ''))); }); }
    if (c.messages.length){ d.appendChild(el('p', null, 'prompt sent:'));
      d.appendChild(el('pre', null, c.messages.map(function(m){ return '[' + m.role + '] ' + m.content; }).join('\n\n'))); }
    if (r.trace.length){ var t = el('table'); var h = el('tr');
      ['step', 'role', 'seconds', 'LLM calls', 'prompt tok', 'completion tok', 'query', 'hits'].forEach(function(x){ h.appendChild(el('th', null, x)); });
      t.appendChild(h);
      r.trace.forEach(function(s){ var tr = el('tr');
        [s.node, s.role, s.s == null ? '' : Number(s.s).toFixed(2), s.calls, s.ptok, s.ctok, s.query, s.hits].forEach(function(x){
          tr.appendChild(el('td', null, x == null ? '' : String(x))); }); t.appendChild(tr); });
      d.appendChild(el('p', null, 'trace:')); d.appendChild(t); }
    return d;
  }
  function render(){
    var body = document.getElementById('samples-body'); body.textContent = '';
    var pages = Math.max(1, Math.ceil(shown.length / PAGE)); if (page >= pages) page = pages - 1;
    shown.slice(page * PAGE, (page + 1) * PAGE).forEach(function(r){
      var tr = el('tr', {'class': 'row'});
      [r.arm, r.qid, r.letter || 'null', r.answer].forEach(function(x){ tr.appendChild(el('td', null, x)); });
      var res = el('td', {'class': r.wrong ? 'sb-bad' : 'sb-ok'}, r.wrong ? 'wrong' + (r.high_risk ? ', high-risk' : '') +
        (r.unsafe ? ', unsafe' : '') : 'correct'); tr.appendChild(res);
      tr.appendChild(el('td', null, r.category || '')); tr.appendChild(el('td', null, r.changed ? 'yes' : ''));
      var open = null;
      tr.addEventListener('click', function(){
        if (open){ open.remove(); open = null; return; }
        open = el('tr', {'class': 'detail'}); var td = el('td', {colspan: '7'}); td.appendChild(detail(r));
        open.appendChild(td); tr.parentNode.insertBefore(open, tr.nextSibling);
      });
      body.appendChild(tr);
    });
    document.getElementById('samples-count').textContent = shown.length + ' of ' + data.length + ' samples';
    document.getElementById('samples-page').textContent = 'page ' + (page + 1) + ' of ' + pages;
  }
  function apply(){ shown = data.filter(keep); page = 0; render(); }
  [f.arm, f.cat, f.wrong, f.hr, f.unsafe, f.changed].forEach(function(x){ x.addEventListener('change', apply); });
  document.getElementById('samples-prev').addEventListener('click', function(){ if (page > 0){ page--; render(); } });
  document.getElementById('samples-next').addEventListener('click', function(){
    if ((page + 1) * PAGE < shown.length){ page++; render(); } });
  render();
})();
"""


def browser_section(rows: list[dict], *, page: int = PAGE) -> str:
    """The section's HTML (with its CSS, data and script inline)."""
    blob = json.dumps(rows, separators=(",", ":"), default=str).replace("</", "<\\/")
    head = "".join(f"<th>{html.escape(h)}</th>" for h in
                   ("graph", "question", "letter", "answer", "result", "attribution", "changed"))
    return (f'<section id="samples" data-page="{page}"><h2>Samples</h2><style>{_CSS}</style>'
            '<p class="note">Every answer behind the tables; click a row for the question, the context the model '
            'saw, its raw output and the trace of its steps.</p>'
            '<div class="filters"><label>graph <select id="f-arm"><option value="">all</option></select></label>'
            '<label>attribution <select id="f-cat"><option value="">all</option></select></label>'
            '<label><input type="checkbox" id="f-wrong"> wrong</label>'
            '<label><input type="checkbox" id="f-hr"> high-risk</label>'
            '<label><input type="checkbox" id="f-unsafe"> unsafe</label>'
            '<label><input type="checkbox" id="f-changed"> changed between graphs</label></div>'
            '<div class="pager"><button id="samples-prev" type="button">previous</button>'
            '<button id="samples-next" type="button">next</button><span id="samples-page"></span> · '
            '<span id="samples-count"></span></div>'
            f'<table id="samples-table"><thead><tr>{head}</tr></thead><tbody id="samples-body"></tbody></table>'
            f'<script type="application/json" id="samples-data">{blob}</script>'
            f'<script>{_JS}</script></section>')
