"""Verdicts: reproduced / not reproduced / inconclusive / not run, and how they become test outcomes.

The verdict itself comes from a claim's registered rule (``harness.rules``, ``harness.rulebook``) applied to
its stored runs (``harness.decide``); this module names the verdicts and their pytest outcomes.

Policy (documented in the README):

* reproduced      -> the test passes;
* not reproduced  -> the test fails, with the posts' value and ours (mean, 95% CI, n) in the message;
* inconclusive    -> the test is reported as XFAIL ("inconclusive: ..."): it ran, but too few seeds (or
  too little power) to decide either way; it does not fail the run;
* not run         -> the test is skipped with its reason (data / weights / device / profile / pending);
* the ``smoke`` profile never issues a verdict: the would-be outcome is kept for debugging, the stored
  verdict is "not run (profile)", and the test passes when the machinery worked.
"""
from __future__ import annotations

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not_reproduced"
INCONCLUSIVE = "inconclusive"
NOT_RUN = "not_run"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_RUN)
NOT_RUN_REASONS = ("data", "weights", "device", "profile", "pending")

LABELS = {REPRODUCED: "reproduced", NOT_REPRODUCED: "not reproduced",
          INCONCLUSIVE: "inconclusive", NOT_RUN: "not run"}
