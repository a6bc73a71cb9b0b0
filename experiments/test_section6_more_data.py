"""Section 6: is more pre-training data always better? (extra unrelated classes)

The claim, its statistic and verdict rule: itl.claims.CLAIMS["section6"].
"""
from itl.experiment import make_tests

test_condition, test_claim = make_tests("section6")
