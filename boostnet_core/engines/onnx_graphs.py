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
import threading
import warnings
from collections import OrderedDict

import torch
from torch import nn

from ..errors import ArgumentError
from .disk_cache import weights_key

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


# The pieces exported in this process, by disk_cache.weights_key (what they depend on), the most recent last: a second
# model object with the same weights (loaded again, deep-copied, another engine or an export of it) reuses them instead
# of tracing the network again (about a second for the CIFAR-10 model). The pieces weigh about what the weights do, so
# the memo keeps at most 64 MB (the small models; an ImageNet model's 150-250 MB are not kept) and drops the oldest.
_EXPORTED: OrderedDict[str, list[bytes]] = OrderedDict()
_EXPORTED_BYTES = 64 * 2**20
_exported_lock = threading.Lock()   # engines are prepared from the app's threads


def export_pieces(model) -> list[bytes]:
    """Serialized ONNX models of every piece, from a copy of the model in eval mode (the model is not touched).

    Raises ArgumentError (one sentence) for a backbone whose state between blocks is not a list of tensors.
    """
    if not model.backbone.has_onnx_form:
        raise ArgumentError(f"{type(model.backbone).__name__} has no ONNX form in this project yet (its state between "
                            "blocks nests lists by scale), so it cannot be exported or run on the ONNX engines; "
                            "serve it with 'boostnet predict', which runs it on torch.")
    key = weights_key(model)
    with _exported_lock:
        kept = _EXPORTED.get(key)
        if kept is not None:
            _EXPORTED.move_to_end(key)
            return list(kept)
    pieces = _export(model)
    if sum(map(len, pieces)) <= _EXPORTED_BYTES:
        with _exported_lock:
            _EXPORTED[key] = pieces
            while sum(sum(map(len, p)) for p in _EXPORTED.values()) > _EXPORTED_BYTES:
                _EXPORTED.popitem(last=False)
    return list(pieces)


def _export(model) -> list[bytes]:
    backbone = copy.deepcopy(model.backbone).cpu().eval()
    n = backbone.num_exits
    pieces, state = [], torch.randn(2, *model.input_shape)
    inputs = ["x"]
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the TorchScript exporter's deprecation and tracer notices
        for i in range(n):
            out = backbone.run_block(i, state)
            if not _is_tensor_list(out):
                raise ArgumentError(f"{type(backbone).__name__}'s state between blocks is not a list of tensors, so it "
                                 "has no ONNX form here; run it on torch ('boostnet predict' does).")
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


def exit_nodes(k: int, f: str, suffix: str = "", known_rank: str | None = None) -> list:
    """The ONNX nodes of exit k's decision quantities, written once for both graphs that compute them: F{k} = f_k
    (k = 0) or f_k + w F_{k-1} from "Fprev{k}" and the constant "w{suffix}", and "conf{k}", the max-softmax of F{k}.
    `known_rank`: a shape constant to reshape F{k} by (OpenVINO does not infer the rank of F_{k-1} brought in by an
    If)."""
    from onnx import helper
    if k == 0:
        nodes = [helper.make_node("Identity", [f], ["F0"])]
    else:
        summed = f"Fsum{k}" if known_rank else f"F{k}"
        nodes = [helper.make_node("Mul", [f"w{suffix}", f"Fprev{k}"], [f"wF{k}"]),
                 helper.make_node("Add", [f, f"wF{k}"], [summed])]
        if known_rank:
            nodes.append(helper.make_node("Reshape", [summed, known_rank], [f"F{k}"]))
    return nodes + [helper.make_node("Softmax", [f"F{k}"], [f"p{k}"], axis=-1),
                    helper.make_node("ReduceMax", [f"p{k}"], [f"conf{k}"], axes=[1], keepdims=0)]


def with_exit_decisions(whole, reweight: float, num_exits: int):
    """The whole network (`join_pieces`) with, besides f0..f{N-1}, every exit's F{k} and conf{k} as outputs, by the
    same operators as the one-graph early exit: the exits chosen from them after a whole-network run on the same
    runtime are the one graph's (engines/auto.py ExitPlan), and no softmax is left to torch, whose thread pool, woken
    between two runtime calls, slowed the next call by 1.5-2.5x on 2 cores. head_logits reads f0..f{N-1} alone; the
    N softmaxes over [B, classes] cost next to nothing beside the network."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper
    graph = whole.graph
    graph.initializer.append(numpy_helper.from_array(np.array(reweight, np.float32), "w"))
    for k in range(num_exits):
        if k > 0:
            graph.node.append(helper.make_node("Identity", [f"F{k - 1}"], [f"Fprev{k}"]))
        graph.node.extend(exit_nodes(k, f"f{k}"))
        classes = graph.output[k].type.tensor_type.shape.dim[1]
        graph.output.extend([helper.make_tensor_value_info(f"F{k}", TensorProto.FLOAT, ["batch", classes.dim_value
                                                                                         or classes.dim_param]),
                             helper.make_tensor_value_info(f"conf{k}", TensorProto.FLOAT, ["batch"])])
    return whole


def early_exit_graph(pieces: list[bytes], reweight: float, num_classes: int):
    """One onnx.ModelProto that runs max-softmax early exit end to end: inputs "x" and "thresholds" (float64 [N-1],
    one per exit but the last); outputs, per exit k, "ids{k}" (int64: the positions in x of the samples that reached
    exit k), "F{k}" (their exit logits F_k = f_k + w F_{k-1}) and "conf{k}" (their max-softmax confidence).

    After exit k the samples whose confidence (compared in float64, as predict_early does) is below t_k are gathered
    (NonZero, Gather) and only they run piece k+1; an If skips the rest of the network when nobody is left, so the
    graph's work follows the MACs the samples need, with no boundary between the pieces.
    """
    import onnx
    from onnx import TensorProto, compose, helper, numpy_helper
    import numpy as np

    protos = [compose.add_prefix(onnx.load_from_string(p), f"p{k}/", rename_inputs=False, rename_outputs=True)
              for k, p in enumerate(pieces)]
    n = len(protos)

    def constants(k: int) -> list:
        """Constants of level k, local to the (sub)graph that uses them, so that every engine folds them."""
        values = {"w": np.array(reweight, np.float32), "zero": np.array(0, np.int64), "one": np.array(1, np.int64),
                  "axis0": np.array([0], np.int64), "t_index": np.array(k, np.int64),
                  "logits_shape": np.array([-1, num_classes], np.int64)}
        return [numpy_helper.from_array(v, f"{name}_{k}") for name, v in values.items()]

    def outputs_of(k):
        return [helper.make_tensor_value_info(f"ids{k}", TensorProto.INT64, [f"n{k}"]),
                helper.make_tensor_value_info(f"F{k}", TensorProto.FLOAT, [f"n{k}", num_classes]),
                helper.make_tensor_value_info(f"conf{k}", TensorProto.FLOAT, [f"n{k}"])]

    def level(k: int) -> tuple[list, list]:
        """Nodes and initializers from piece k on; its inputs (state s{k-1}_*, or x; F_prev{k}; ids{k}) are in
        scope."""
        proto = protos[k]
        nodes, inits = list(proto.graph.node), list(proto.graph.initializer) + constants(k)
        nodes += exit_nodes(k, f"p{k}/f{k}", suffix=f"_{k}", known_rank=f"logits_shape_{k}")
        if k == n - 1:
            return nodes, inits
        states = [o.name for o in proto.graph.output][1:]          # p{k}/s{k}_j
        nodes += [helper.make_node("Cast", [f"conf{k}"], [f"confd{k}"], to=TensorProto.DOUBLE),
                  helper.make_node("Gather", ["thresholds", f"t_index_{k}"], [f"t{k}"]),
                  helper.make_node("Less", [f"confd{k}", f"t{k}"], [f"stay{k}"]),
                  helper.make_node("NonZero", [f"stay{k}"], [f"nz{k}"]),
                  helper.make_node("Squeeze", [f"nz{k}", f"axis0_{k}"], [f"keep{k}"]),
                  helper.make_node("Size", [f"keep{k}"], [f"left{k}"]),
                  helper.make_node("Greater", [f"left{k}", f"zero_{k}"], [f"any{k}"])]
        then_nodes = [helper.make_node("Gather", [s, f"keep{k}"], [s.split("/", 1)[1]], axis=0) for s in states]
        then_nodes += [helper.make_node("Gather", [f"F{k}", f"keep{k}"], [f"Fprev{k + 1}"], axis=0),
                       helper.make_node("Gather", [f"ids{k}", f"keep{k}"], [f"ids{k + 1}"], axis=0)]
        rest, rest_inits = level(k + 1)
        later = [o for j in range(k + 1, n) for o in outputs_of(j)]
        then_graph = helper.make_graph(then_nodes + rest, f"continue{k}", [], later, initializer=rest_inits)
        # Nobody left: empty outputs gathered with the empty index (OpenVINO reads an empty constant as a scalar).
        else_nodes = [helper.make_node("Gather", [f"ids{k}", f"keep{k}"], [f"e{k}_ids"], axis=0),
                      helper.make_node("Gather", [f"F{k}", f"keep{k}"], [f"e{k}_F"], axis=0),
                      helper.make_node("Gather", [f"conf{k}", f"keep{k}"], [f"e{k}_conf"], axis=0)]
        for j in range(k + 1, n):
            else_nodes += [helper.make_node("Identity", [f"e{k}_{kind}"], [f"e{k}_{kind}{j}"]) for kind in ("ids", "F", "conf")]
        else_outputs = [helper.make_tensor_value_info(f"e{k}_{o.name}", o.type.tensor_type.elem_type,
                                                      [0] + [d.dim_value for d in o.type.tensor_type.shape.dim[1:]])
                        for o in later]
        else_graph = helper.make_graph(else_nodes, f"stop{k}", [], else_outputs)
        nodes.append(helper.make_node("If", [f"any{k}"], [o.name for o in later], then_branch=then_graph,
                                      else_branch=else_graph))
        return nodes, inits

    head = [helper.make_node("Shape", ["x"], ["x_shape"]),
            helper.make_node("Gather", ["x_shape", "zero_0"], ["batch"]),
            helper.make_node("Range", ["zero_0", "batch", "one_0"], ["ids0"])]
    body, initializers = level(0)
    graph = helper.make_graph(head + body, "early_exit",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch"] + list(
                                  d.dim_value for d in protos[0].graph.input[0].type.tensor_type.shape.dim[1:])),
                               helper.make_tensor_value_info("thresholds", TensorProto.DOUBLE, [n - 1])],
                              [o for k in range(n) for o in outputs_of(k)], initializer=initializers)
    model = helper.make_model(graph, opset_imports=protos[0].opset_import, ir_version=protos[0].ir_version)
    return model


class ModelGraphs:
    """A model's serialized ONNX graphs, each made at its first use and shared by the ONNX engines: the pieces, the
    whole network (the pieces joined) and the one-graph early exit. With `disk` (disk_cache.EngineCache), each is read
    from an earlier process's copy for the same weights, or kept for the next one; onnx is imported only to make one.
    Holds no reference to the model (the engine registry keeps models weakly)."""

    def __init__(self, disk=None):
        self._disk, self._made = disk, {}
        self.from_disk: set[str] = set()     # the graphs read from the disk cache (not made here)
        self._made_here: set[str] = set()    # graphs never to read from the disk again (its copy was unusable)

    def make_anew(self, *names: str) -> None:
        """Forget these graphs, read from the disk cache but not usable by a runtime: they are made again from the
        model at their next use, and the disk's copies overwritten (a piece: all pieces, exported together)."""
        for name in names:
            self._made.pop(name, None)
            self.from_disk.discard(name)
        self._made_here.update(names)

    def _kept(self, name: str) -> bytes | None:
        if self._disk is None or name in self._made_here:
            return None
        data = self._disk.graph(name)
        if data is not None:
            self.from_disk.add(name)
        return data

    def _keep(self, name: str, data: bytes) -> None:
        if self._disk is not None:
            self._disk.keep_graph(name, data)

    def _get(self, name: str, make):
        if name not in self._made:
            data = self._kept(name)
            if data is None:
                data = make()
                self._keep(name, data)
            self._made[name] = data
        return self._made[name]

    def pieces(self, model) -> list[bytes]:
        names = [f"piece{i}" for i in range(model.num_exits)]
        if not all(name in self._made for name in names):
            kept = [self._kept(name) for name in names]
            if any(data is None for data in kept):   # exported together: one missing, all made again
                kept = export_pieces(model)
                for name, data in zip(names, kept):
                    self._keep(name, data)
                self.from_disk.difference_update(names)
            self._made.update(zip(names, kept))
        return [self._made[name] for name in names]

    def whole(self, model) -> bytes:
        """The whole network with every exit's decision quantities: outputs f0..f{N-1}, F0..F{N-1}, conf0..conf{N-1}
        (`with_exit_decisions`)."""
        return self._get("whole", lambda: with_exit_decisions(join_pieces(self.pieces(model)), model.reweight,
                                                              model.num_exits).SerializeToString())

    def early_exit(self, pieces: list[bytes], reweight: float, num_classes: int) -> bytes:
        """The one-graph early exit of this model (`pieces`, w and the class count are the same model's: the disk
        entry is keyed by its weights and w)."""
        return self._get("early_exit", lambda: early_exit_graph(pieces, reweight, num_classes).SerializeToString())
