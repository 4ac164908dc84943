"""Names of REST's attacks, each by its source, without importing torch (the command-line
parsers list them). training/rest.py implements them; docs/robustness.md, "Sources", says
which behaviour comes from the REST paper (Duggal et al., WWW 2020,
https://arxiv.org/abs/2001.11363) and which from its public code.

- "paper": REST paper, eq. 2: X_p(0) = X, then steps of eps * sign(gradient), each clipped to
  the L-inf ball (no random start; with a step of eps each iterate is a corner of the ball);
- "rest-code": REST's public code: a random start in U(-eps, eps) and steps of 0.01 uV (after
  10 steps at most 0.1 uV from the start: in effect uniform noise in +-eps);
- "pgd": a standard L-inf PGD (Madry et al.: random start, step 2.5 * eps / iterations).
"""

ATTACKS = ("paper", "rest-code", "pgd")
#: Names of earlier versions, read from old run folders and configs.
ATTACK_ALIASES = {"rest-published": "rest-code"}
#: REST code's attack step, microvolts.
REST_CODE_STEP_UV = 0.01
