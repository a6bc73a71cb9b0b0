"""Section 5.3: does coarse-class training induce features that separate fine classes?

The paper: Yes: features of a network trained on coarse classes distinguish fine classes it never
saw labelled, far better than random features.

Conditions: the full source and the 127-class analogue, each probed by a linear classifier on the
source's fine (leaf) classes; plus a randomly initialised network, the floor every transfer gain is
measured from. At small scale: full, labels=down-up:29.

Statistic (per seed, then mean and 95% t interval over seeds): share of the fine-trained network's
fine-class linear-probe gain over random features that the 127-class analogue recovers (%).

Rule: reproduced when the interval lies above the margin 50 (beating random features can hardly
fail; 'far better' read as recovering more than half of what fine-class training gives (RECOVER).);
not reproduced when it lies wholly on the other side; inconclusive otherwise. Verdicts at half and
twice the margin are reported beside it. Judged on the primary target only (claims module
docstring).

Written once in itl.claims.CLAIMS["section5_3"]; tests/test_experiments.py checks this text against
it.
"""
from itl.experiment import make_tests

test_condition, test_claim = make_tests("section5_3")
