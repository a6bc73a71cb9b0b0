"""Section 5.2: is fine-grained recognition necessary for learning transferable features?

The claim, its statistic and verdict rule: itl.claims.CLAIMS["section5_2"].
"""
from itl.experiment import make_tests

test_condition, test_claim = make_tests("section5_2")
