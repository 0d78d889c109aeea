"""The shared JSON-role machinery: one options block, one call path, visible fallbacks."""

from __future__ import annotations

import asyncio
import json

import pytest

from ragsafe.agents import decompose, grade, plan, rerank, rewrite, synthesize, verify
from ragsafe.agents.answer import build_messages, format_options
from ragsafe.agents.structured import Role, obj_schema
from tests.fakes import ScriptedLLM, doc

OPTS = {"A": "Pneumothorax", "B": "Giant bulla", "C": "Pleural effusion"}


def run(coro):
    return asyncio.run(coro)


def test_format_options_keeps_order_and_text():
    assert format_options({"B": "x", "A": "y z"}) == "B. x\nA. y z"
    assert format_options({}) == ""


def test_role_renders_stripped_question_and_options_block_and_sends_sampling():
    role = Role("sys", "Q: {question}\n{options}\n[{extra}]", prompt_hash="h1")
    llm = ScriptedLLM(['{"ok": 1}'])
    schema = obj_schema({"ok": {"type": "integer"}})
    s = run(role.ask(llm, validate=lambda o: o["ok"] + 1, fallback=0, schema=schema, max_tokens=7,
                     temperature=0.3, seed=11, question="  stem \n", options=OPTS, extra="e"))
    req = llm.requests[0]
    assert req["messages"] == [{"role": "system", "content": "sys"},
                               {"role": "user", "content": "Q: stem\nA. Pneumothorax\nB. Giant bulla\n"
                                                           "C. Pleural effusion\n[e]"}]
    assert (req["max_tokens"], req["temperature"], req["seed"]) == (7, 0.3, 11)
    assert req["response_format"] == {"type": "json_object", "schema": schema}
    assert (s.value, s.fallback, s.prompt_hash) == (2, False, "h1")


def test_role_without_a_hash_names_its_system_prompt():
    a, b = Role("one", "{question}"), Role("two", "{question}")
    llm = ScriptedLLM(["{}", "{}"])
    ha = run(a.ask(llm, validate=dict, fallback=None, max_tokens=5, question="q")).prompt_hash
    hb = run(b.ask(llm, validate=dict, fallback=None, max_tokens=5, question="q")).prompt_hash
    assert ha and hb and ha != hb


@pytest.mark.parametrize("reply, reason", [("not json", "reply was not JSON"), ('{"ok": "x"}', "JSON did not fit")])
def test_role_falls_back_visibly(reply, reason):
    def validate(o):
        raise ValueError("bad")

    s = run(Role("s", "{question}").ask(ScriptedLLM([reply]), validate=validate, fallback="fb", max_tokens=5,
                                        question="q"))
    t = s.trace("r")
    assert (s.value, s.fallback, t["fallback"], t["output"]) == ("fb", True, True, "fb")
    assert t["fallback_reason"].startswith(reason)
    assert set(t["llm_calls"][0]) >= {"model", "prompt_tokens", "completion_tokens", "text"}


def _roles(llm):
    n = synthesize.OptionNotes("A", "Pneumothorax", "supported")
    return {
        "decompose": decompose.decompose(llm, "What?", OPTS),
        "grade": grade.grade(llm, "What?", OPTS, "p"),
        "rerank": rerank.score(llm, "What?", OPTS, "p"),
        "rewrite": rewrite.rewrite(llm, "What?", OPTS),
        "rewrite_option": rewrite.rewrite(llm, "What?", OPTS, letter="B", previous=["q1"]),
        "plan": plan.plan(llm, "What?", OPTS),
        "verify": verify.verify(llm, "What?", OPTS, "A", [doc("d", "t")]),
        "synthesize": synthesize.synthesize(llm, "What?", [n]),
    }


def test_every_role_that_shows_options_shows_the_answerers_block():
    """The options a role sees are written exactly as the answer prompt writes them."""
    block = format_options(OPTS)
    assert block in build_messages("What?", OPTS)[1]["content"]
    llm = ScriptedLLM(lambda m: "{}")
    names = []
    for name, coro in _roles(llm).items():
        run(coro)
        names.append(name)
    users = [r["messages"][1]["content"] for r in llm.requests]
    for name, user in zip(names, users, strict=True):
        if name != "synthesize":  # the synthesizer reads research notes, not the options list
            assert block in user, name
        assert "What?" in user, name


def test_every_role_sends_a_closed_schema_and_records_its_fallback_on_junk():
    llm = ScriptedLLM(lambda m: "no json here")
    for name, coro in _roles(llm).items():
        s = run(coro)
        assert s.fallback and s.reason == "reply was not JSON", name
        assert json.dumps(s.trace(name))  # trace entries stay JSON (plans, verdicts as plain dicts)
    for r in llm.requests:
        schema = r["response_format"]["schema"]
        assert schema["type"] == "object" and schema["additionalProperties"] is False


def test_roles_take_their_own_token_budget_unless_told_and_refuse_unknown_settings():
    llm = ScriptedLLM(lambda m: '{"relevant": true}')
    run(grade.grade(llm, "Q?", OPTS, "p"))
    run(grade.grade(llm, "Q?", OPTS, "p", max_tokens=7, temperature=0.4, seed=5))
    assert [(r["max_tokens"], r["temperature"], r["seed"]) for r in llm.requests] == [(20, 0.0, None), (7, 0.4, 5)]
    with pytest.raises(TypeError, match="temprature"):
        run(grade.grade(llm, "Q?", OPTS, "p", temprature=0.4))  # a typo is an error, not a silent default
    assert len(llm.requests) == 2
