"""Rank candidate pretrained sources from frozen features before any fine-tuning.

`python -m tlbench.rank data=<dataset> 'candidates=[...]'`: candidates.py resolves the sources,
run.py computes features (through the feature cache), probes.py and estimators.py score them,
output.py writes ranking.md/.csv/.json; tlbench.report.ranking_check sets rankings beside
fine-tuned results.
"""
