"""Early exit under stress: common corruptions (corruptions.py), the slowdown attack (attacks.py), and a model run over
clean and stressed versions of the same images (run.py). docs/stress.md holds the measurements and how they differ
from the published generators."""
from .attacks import EPSILON, slowdown_attack, slowdown_loss, universal_slowdown
from .corruptions import CORRUPTIONS, FAMILIES, NAMES, SEVERITIES, corrupt
from .run import (ATTACKS, Condition, ConditionRun, ExitRule, attack, corruption, exit_outputs, iter_runs,
                  load_outputs, run_condition, stress_images, stress_test, summarise)

__all__ = ["ATTACKS", "CORRUPTIONS", "Condition", "ConditionRun", "EPSILON", "ExitRule", "FAMILIES", "NAMES",
           "SEVERITIES", "attack", "corrupt", "corruption", "exit_outputs", "iter_runs", "load_outputs", "run_condition",
           "slowdown_attack", "slowdown_loss", "stress_images", "stress_test", "summarise", "universal_slowdown"]
