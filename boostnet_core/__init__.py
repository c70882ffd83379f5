"""boostnet_core: early-exit networks trained as boosted additive ensembles (BoostNet; Yu et al., AAAI 2023,
arXiv 2211.16726). The method in the project's own words: docs/method.md; the module map: README, "Architecture".

Public surface: `load_model(path)`, `create_model(preset)`, `BoostNet`, and the modules `evaluation`,
`thresholds`, `early_exit`, `inference`, `explain`, `macs`, `data`, `training`, `checkpoint`, `study`, `errors`
(every error a user can cause is an `errors.UserError`).
"""
from .boosting import BoostNet
from .checkpoint import load_model
from .errors import CheckpointError, DataError, TrainingError, UserError
from .factory import create_model

__all__ = ["BoostNet", "CheckpointError", "DataError", "TrainingError", "UserError", "load_model", "create_model"]
__version__ = "0.1.0"
