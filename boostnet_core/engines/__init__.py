"""Inference engines: the same trained network run by the fastest engine on the machine, prepared once.

    engine = prepare_inference(model, "auto" | "torch" | "torch-fold" | "torch-jit" | "openvino" | "onnxruntime",
                               precision="fp32" | "bf16")

returns an InferenceEngine (base.py): the stepwise contract of models/stepwise.py plus whole-network `head_logits`,
held by the caller and reused. The core's functions take `engine=`: None means the model's default engine
(`engine_for`), which a model keeps until its weights change (an optimizer step, load_state_dict, .to()); then it is
prepared again. `fast=False` everywhere runs the eager model exactly as trained, never an engine.
- "auto" (auto.py) measures the prepared engines on this machine, per use (one image, a batch, a whole split; whole
  network or early exit's walk) and names its pick (`AutoEngine.picked`, and a log line).
- An engine that is not installed or fails to prepare gives way to the next one in FALLBACK, with one warning; an
  engine whose fp32 logits differ from the eager model's by more than 1e-4 is refused the same way.
"""
from .base import AGREEMENT_TOLERANCE, EngineUnavailable, InferenceEngine, check_agreement
from .registry import DEFAULT_ENGINE, ENGINES, FALLBACK, PRECISIONS, try_prepare
from .select import default_engine, engine_for, engine_name, prepare_inference

__all__ = ["AGREEMENT_TOLERANCE", "DEFAULT_ENGINE", "ENGINES", "EngineUnavailable", "FALLBACK", "InferenceEngine",
           "PRECISIONS", "check_agreement", "default_engine", "engine_for", "engine_name", "prepare_inference",
           "try_prepare"]
