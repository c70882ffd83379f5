"""The names of the study report, kept where callers found them before the report moved into `boostnet_core.study`
(runs.py, stats.py, compare.py, report.py, markdown.py, plot.py)."""
from .study.compare import BUDGET_SHARES, budgeted_at, compare, orient
from .study.markdown import markdown
from .study.plot import plot
from .study.report import boostnet_against_joint, build_report, write_report
from .study.runs import StudyRun, load_runs, recipe_name, run_identity, seed_band, seed_siblings
from .study.stats import LEVEL, bootstrap_difference, mcnemar, mean_sd, t_interval, verdict

__all__ = ["BUDGET_SHARES", "LEVEL", "StudyRun", "boostnet_against_joint", "bootstrap_difference", "budgeted_at",
           "build_report", "compare", "load_runs", "markdown", "mcnemar", "mean_sd", "orient", "plot", "recipe_name",
           "run_identity", "seed_band", "seed_siblings", "t_interval", "verdict", "write_report"]
