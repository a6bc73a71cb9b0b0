"""Section 5.6 (b): do features hold up on classes never seen? (random and minimal splits)

The paper: Features trained on one half of the classes hold up on the other half's classes and on
the transfer tasks, less so across the 'minimal' split whose halves share the fewest WordNet
ancestors.

Conditions: the four halves of the random and the 'minimal' 50/50 class splits, each probed on both
halves' classes; plus a randomly initialised network, the floor every transfer gain is measured
from. At small scale: split=random:a, split=random:b, split=minimal:a, split=minimal:b.

Statistic (per seed, then mean and 95% t interval over seeds): share of a half's own linear-probe
gain that the network trained on the other half keeps (both directions averaged): random split minus
minimal split (points of %).

Rule: reproduced when the interval lies above the margin 5 (all four halves trained, so each half is
compared with its own network (like with like, not half B of one split against half B of another);
'less so' read as EFFECT.); not reproduced when it lies wholly on the other side; inconclusive
otherwise. Verdicts at half and twice the margin are reported beside it. Judged on the primary
target only (claims module docstring).

Written once in itl.claims.CLAIMS["section5_6b"]; tests/test_experiments.py checks this text
against it.
"""
from itl.experiment import make_tests

test_condition, test_claim = make_tests("section5_6b")
