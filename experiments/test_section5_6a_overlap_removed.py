"""Section 5.6 (a): do the target's own classes need to be in pre-training? (overlap removed)

The claim, its statistic and verdict rule: itl.claims.CLAIMS["section5_6a"].
"""
from itl.experiment import make_tests

test_condition, test_claim = make_tests("section5_6a")
