"""ONNX graphs of a model's stepwise pieces, shared by the ONNX Runtime and OpenVINO engines and `boostnet export`.

Piece i is block i and head i: it takes the state handed on by block i-1 (the images for i = 0) and gives head i's
raw logits f_i and the state for block i+1 (the last piece gives its logits only). The whole network, every head's
logits from the images in one graph, is the pieces joined (onnx.compose), so it is exported once. The state must
be a list of tensors (MSDNet's per-scale maps); RANet's carries counters and per-flow lists and has no ONNX form here.
torch.onnx.export runs its TorchScript-based exporter (dynamo=False): it needs no onnxscript and exports these
graphs reliably; the batch dimension is dynamic.
"""
from __future__ import annotations

import copy
import io
import warnings

import torch
from torch import nn

OPSET = 17


def state_names(i: int, count: int) -> list[str]:
    """Names of the state tensors handed from block i to block i+1 (s{i}_0 = the finest scale still kept)."""
    return [f"s{i}_{j}" for j in range(count)]


class _Piece(nn.Module):
    def __init__(self, backbone, i: int, last: bool):
        super().__init__()
        self.backbone, self.i, self.last = backbone, i, last

    def forward(self, *state):
        state = self.backbone.run_block(self.i, state[0] if self.i == 0 else list(state))
        logits = self.backbone.run_head(self.i, state)
        return logits if self.last else (logits, *state)


def _is_tensor_list(state) -> bool:
    return isinstance(state, (list, tuple)) and all(isinstance(s, torch.Tensor) for s in state)


def export_pieces(model) -> list[bytes]:
    """Serialized ONNX models of every piece, from a copy of the model in eval mode (the model is not touched).

    Raises ValueError (one sentence) for a backbone whose state between blocks is not a list of tensors.
    """
    backbone = copy.deepcopy(model.backbone).cpu().eval()
    n = backbone.num_exits
    pieces, state = [], torch.randn(2, *model.input_shape)
    inputs = ["x"]
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the TorchScript exporter's deprecation and tracer notices
        for i in range(n):
            out = backbone.run_block(i, state)
            if not _is_tensor_list(out):
                raise ValueError(f"{type(backbone).__name__}'s state between blocks is not a list of tensors, so it "
                                 "has no ONNX form here; use a torch engine.")
            last = i == n - 1
            outputs = [f"f{i}"] + ([] if last else state_names(i, len(out)))
            piece = _Piece(backbone, i, last).eval()
            args = (state,) if i == 0 else tuple(state)
            buffer = io.BytesIO()
            torch.onnx.export(piece, args, buffer, dynamo=False, opset_version=OPSET, input_names=inputs,
                              output_names=outputs, dynamic_axes={name: {0: "batch"} for name in inputs + outputs})
            pieces.append(buffer.getvalue())
            inputs, state = outputs[1:], list(out)
    return pieces


def join_pieces(pieces: list[bytes], last: int | None = None):
    """One onnx.ModelProto running pieces 0..last (default: all) from the images: outputs f0..f{last} (a prefix
    graph when last < N-1, the whole network otherwise)."""
    import onnx
    from onnx import compose
    protos = [onnx.load_from_string(p) for p in pieces]
    last = len(protos) - 1 if last is None else last
    joined = compose.add_prefix(protos[0], "p0/", rename_inputs=False, rename_outputs=False)
    for i in range(1, last + 1):
        nxt = compose.add_prefix(protos[i], f"p{i}/", rename_inputs=False, rename_outputs=False)
        links = [(name, name) for name in (inp.name for inp in nxt.graph.input)]
        keep = [f"f{k}" for k in range(i)] + [o.name for o in nxt.graph.output]
        joined = compose.merge_models(joined, nxt, io_map=links, outputs=keep)
    wanted = [f"f{k}" for k in range(last + 1)]
    extra = [o for o in joined.graph.output if o.name not in wanted]
    for o in extra:
        joined.graph.output.remove(o)
    return joined
