"""Comparing today's summaries with frozen copies written before later issues added to the format.

Sections added after a freeze (:data:`ADDED_AFTER_FREEZE`: issue 15's ``safety`` section) and the
attribution categories added with them (:data:`ADDED_CATEGORIES`, which must be 0 in the frozen
fixtures) are taken out of today's output before the comparison; everything frozen is still compared
in full, byte for byte where the test says so.
"""

from __future__ import annotations

import json

ADDED_AFTER_FREEZE = ("safety",)
ADDED_CATEGORIES = ("abstention", "poison_captured")


def frozen_part(summary: dict) -> dict:
    out = {k: v for k, v in summary.items() if k not in ADDED_AFTER_FREEZE}
    for cell in (out.get("variants") or {}).values():
        att = cell.get("attribution") or {}
        for key in ("counts", "high_risk_counts"):
            for c in ADDED_CATEGORIES:
                if key in att:
                    assert att[key].pop(c) == 0, f"the frozen runs have no {c} answers"
    return out


def frozen_bytes(raw: bytes) -> bytes:
    """A summary.json as the store writes it, without what was added after the freeze."""
    return (json.dumps(frozen_part(json.loads(raw)), indent=2, sort_keys=True, default=str) + "\n").encode()
