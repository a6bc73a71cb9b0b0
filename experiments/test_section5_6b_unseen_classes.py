"""Section 5.6 (b): do features hold up on classes never seen? (random and minimal splits)

The claim, its statistic and verdict rule: itl.claims.CLAIMS["section5_6b"].
"""
from itl.experiment import make_tests

test_condition, test_claim = make_tests("section5_6b")
