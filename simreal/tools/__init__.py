"""Day-to-day tools: robustness maps, rollout videos, multi-seed sweeps (planned: issue 14). Nothing lives here
yet."""
