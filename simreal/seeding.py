"""Named seed offsets: every stream derived from a run's seed, in one place.

A derived stream is ``seed + OFFSET`` so that it never coincides with another stream of the same run. The envs of a
VecEnv take ``seed + i`` for env ``i``, so an offset stays well above any ``n_envs``.
"""

from __future__ import annotations

#: Evaluation envs during training: episodes never share their initial states or dynamics with training envs.
EVALUATION = 10_000
#: System identification: the windows sampled from held-out episodes, apart from those of the fitted ones.
HOLDOUT_WINDOWS = 7
#: System identification: CMA-ES takes ``seed + CMA`` (cma reads a seed of 0 as "pick one at random").
CMA = 1
#: System identification: the final fit after the delay screen, apart from the screening fits.
FINAL_FIT = 1
#: System identification: the noise drawn to tell how much error the noise alone leaves (the misfit check).
MISFIT_NOISE = 11
#: UP-OSI: the rollouts that train and test the estimator, apart from training and evaluation episodes.
OSI = 20_000
