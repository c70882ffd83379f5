"""Studies of many runs: a grid of training runs over methods, gradient rescaling and seeds, and its report.

- variants.py: what a study compares (`Variant`: method and gradient rescaling; its spellings derive from it);
- grid.py: planning and running the grid (`plan`, `run_study`; resumable);
- runs.py: finding finished runs and grouping them by recipe; seed siblings;
- stats.py, compare.py: the statistics and the paired comparison of two variants;
- report.py, markdown.py, plot.py: the report and its three files (report.json, report.md, report.png).
"""
from .grid import (EXECUTION_FLAGS, MANIFEST, OWN_FLAGS, RunSpec, commands_for, epochs_done, is_evaluated, plan,
                   run_folder_name, run_folders, run_study)
from .variants import METHODS, Variant

__all__ = ["EXECUTION_FLAGS", "MANIFEST", "METHODS", "OWN_FLAGS", "RunSpec", "Variant", "commands_for", "epochs_done",
           "is_evaluated", "plan", "run_folder_name", "run_folders", "run_study"]
