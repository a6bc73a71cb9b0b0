"""Section 6: is more pre-training data always better? (extra unrelated classes)

The paper: No: adding data from extra classes unrelated to the target does not necessarily help
transfer, and can hurt.

Conditions: the full source and the source plus held-out classes unrelated to the target; plus a
randomly initialised network, the floor every transfer gain is measured from. At small scale: full,
extra=40.

Statistic (per seed, then mean and 95% t interval over seeds): transfer gain with the extra classes
added, minus the gain without them, as a share of the gain without them (%).

Rule: reproduced when the interval lies below the margin 20 (a non-superiority question: the extra
unrelated classes do not improve transfer by more than NEAR (20% of the gain); hurting and no effect
both reproduce it.); not reproduced when it lies wholly on the other side; inconclusive otherwise.
Verdicts at half and twice the margin are reported beside it. Judged on the primary target only
(claims module docstring).

Written once in itl.claims.CLAIMS["section6"]; tests/test_experiments.py checks this text against
it.
"""
from itl.experiment import make_tests

test_condition, test_claim = make_tests("section6")
