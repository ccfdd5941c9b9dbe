"""Transfer to the target: fine-tuning strategies and the end-to-end transfer pipeline with its report (planned:
issue 12). Nothing lives here yet."""
