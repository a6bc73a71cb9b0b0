"""Section 5.1 (Figure 2): how many pre-training classes are sufficient? (WordNet levels)

The claim, its statistic and verdict rule: itl.claims.CLAIMS["section5_1"].
"""
from itl.experiment import make_tests

test_condition, test_claim = make_tests("section5_1")
