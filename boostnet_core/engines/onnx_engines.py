"""The ONNX Runtime and OpenVINO engines: the model's ONNX graphs (onnx_graphs.py) compiled once per set of weights.

`head_logits` runs the whole network as one fused graph (the fastest full inference); the stepwise contract runs
one piece per block (block i + head i), the state handed between pieces as arrays, which is what early exit walks.
Each piece computes its head with its block, so `run_head` returns the logits its `run_block` already computed.
`fused_early_exit` runs max-softmax early exit as one graph (onnx_graphs.early_exit_graph): the samples that stay
are gathered inside the graph, so no state crosses a graph boundary (the per-piece walk pays the runtimes' layout
reorders and copies at every boundary: docs/engines.md).
Both engines run on the CPU. OpenVINO's default inference precision on a CPU with bf16 is bf16: fp32 sets the f32
hint explicitly; precision="bf16" asks for bf16 (OpenVINO only; ONNX Runtime has no bf16 convolutions on a CPU).
"""
from __future__ import annotations

import threading

import numpy as np
import torch

from .base import EngineUnavailable, InferenceEngine
from .onnx_graphs import ModelGraphs

PARTS_FROM = 16   # OpenVINO: the smallest batch run in parts (of at least 8 images) on several streams


def _arrays(state) -> list[np.ndarray]:
    tensors = [state] if isinstance(state, torch.Tensor) else list(state)
    return [np.ascontiguousarray(t.detach().float().cpu().numpy()) for t in tensors]


class OnnxEngine(InferenceEngine):
    """The pieces and the whole graph of a model, each compiled by a runtime into a function arrays -> arrays.

    Subclasses implement `compile` (and may override compile_whole, compile_early), turning their runtime's refusal of
    a graph into EngineUnavailable; any other exception is a bug and raises."""

    fused_whole = True

    def __init__(self, model, precision: str, graphs: ModelGraphs | None = None):
        super().__init__(model.backbone, precision)
        if next(model.parameters()).device.type != "cpu":
            raise EngineUnavailable("it runs on the CPU only")
        if not model.backbone.has_onnx_form:
            raise EngineUnavailable(f"{type(model.backbone).__name__} has no ONNX form here")
        self._graphs = graphs if graphs is not None else ModelGraphs()
        try:
            self._graphs.pieces(model)   # exported here (or read from the disk cache) before any runtime sees them
        except torch.onnx.errors.OnnxExporterError as e:
            raise EngineUnavailable(f"the model could not be exported to ONNX ({str(e).splitlines()[0]})") from e
        names = [f"piece{i}" for i in range(model.num_exits)] + ["whole"]
        self.pieces, self.whole = self._made_anew_on_failure(names, lambda: (
            [self.compile_piece(p) for p in self._graphs.pieces(model)], self.compile_whole(self._graphs.whole(model))))
        self._onnx_pieces, self._reweight, self._classes = self._graphs.pieces(model), model.reweight, model.num_classes
        self._early = None   # the early-exit graph, compiled at its first use
        self._pending = threading.local()   # the logits of the piece that produced a state, until run_head reads them

    def _made_anew_on_failure(self, names: list[str], compile_them):
        """compile_them(); if it fails while some of the graphs `names` came from the disk cache (damaged there, or
        unreadable by this runtime), those are made anew from the model and compile_them() runs once more."""
        try:
            return compile_them()
        except EngineUnavailable:   # the runtime refused a graph
            from_disk = [name for name in names if name in self._graphs.from_disk]
            if not from_disk:
                raise
            self._graphs.make_anew(*from_disk)
            return compile_them()

    def compile(self, onnx_bytes: bytes):
        raise NotImplementedError

    def compile_piece(self, onnx_bytes: bytes):
        """One piece of the block walk (block i + head i): by default compiled like every graph."""
        return self.compile(onnx_bytes)

    def compile_whole(self, onnx_bytes: bytes):
        """The whole-network graph (every exit for every sample): by default compiled like every graph."""
        return self.compile(onnx_bytes)

    def compile_early(self, onnx_bytes: bytes):
        """The one-graph early exit (x, thresholds) -> (sample ids, F, confidence) per exit: by default like every graph."""
        return self.compile(onnx_bytes)

    def run_block(self, i: int, state):
        outputs = self.pieces[i](_arrays(state))
        new_state = [torch.from_numpy(a) for a in outputs[1:]]
        self._pending.value = (new_state, torch.from_numpy(outputs[0]))
        return new_state

    def run_head(self, i: int, state) -> torch.Tensor:
        pending = getattr(self._pending, "value", None)
        if pending is not None and pending[0] is state:
            return pending[1]
        with torch.inference_mode():   # a state this engine did not just produce: the eager head
            return self.backbone.run_head(i, state)

    def head_input(self, state) -> torch.Tensor:
        return state[-1]

    def head_logits(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [torch.from_numpy(a) for a in self.whole(_arrays(x))[: self.num_exits]]

    def exit_decisions(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """F_k and confidences from the whole graph's outputs after f0..f{N-1} (onnx_graphs.with_exit_decisions)."""
        outputs, n = self.whole(_arrays(x)), self.num_exits
        return torch.from_numpy(np.stack(outputs[n::2])), torch.from_numpy(np.stack(outputs[n + 1::2]))

    def fused_early_exit(self, batch: int):
        """Max-softmax early exit in one graph (onnx_graphs.early_exit_graph), compiled at its first use."""
        if self._early is None:
            self._early = self._made_anew_on_failure(["early_exit"], lambda: self.compile_early(
                self._graphs.early_exit(self._onnx_pieces, self._reweight, self._classes)))
        return self._run_early_exit

    def _run_early_exit(self, x: torch.Tensor, thresholds: list[float]):
        n, b = self.num_exits, len(x)
        outputs = self._early(_arrays(x) + [np.asarray(thresholds[: n - 1], dtype=np.float64)])
        # Sorted into place with numpy: a few small operations, each a microsecond or two (torch's would each cost
        # several, and may wake its thread pool right before the next run).
        ids, F, conf = (np.concatenate(outputs[j::3]) for j in range(3))   # every exit every sample reached, in order
        reached = np.repeat(np.arange(n), [len(a) for a in outputs[0::3]])
        exit_index = np.bincount(ids, minlength=b) - 1      # a sample reaches exits 0..its exit, one row each
        at_exit = reached == exit_index[ids]
        logits = np.zeros((b, self._classes), np.float32)
        confidence = np.zeros(b, np.float32)
        logits[ids[at_exit]], confidence[ids[at_exit]] = F[at_exit], conf[at_exit]
        exit_conf = np.full((n, b), np.nan, np.float32)
        exit_conf[reached, ids] = conf
        return tuple(torch.from_numpy(a) for a in (exit_index, logits, confidence, exit_conf))


class OnnxRuntimeEngine(OnnxEngine):
    name = "onnxruntime"

    def __init__(self, model, precision: str = "fp32", graphs=None):
        if precision != "fp32":
            raise EngineUnavailable("ONNX Runtime runs fp32 only here (no bf16 convolutions on a CPU)")
        import onnxruntime as ort
        from onnxruntime.capi import onnxruntime_pybind11_state as state
        self._ort = ort
        # ONNX Runtime's own error classes (none is a Python built-in class); those this version has.
        self.runtime_errors = tuple(getattr(state, name) for name in (
            "Fail", "InvalidGraph", "InvalidArgument", "InvalidProtobuf", "NotImplemented", "RuntimeException",
            "EPFail", "NotFound", "NoSuchFile", "EngineError", "ModelLoaded", "ModelRequiresCompilation")
            if isinstance(getattr(state, name, None), type))
        super().__init__(model, precision, graphs)

    def compile(self, onnx_bytes: bytes):
        return self._session(onnx_bytes, spinning=True)

    def compile_piece(self, onnx_bytes: bytes):
        return self._session(onnx_bytes, spinning=False)

    def _session(self, onnx_bytes: bytes, spinning: bool):
        """The graph as an ONNX Runtime session on torch's thread count. `spinning`: its threads keep polling for a
        while after each run, which made a whole-network call at batch 1 1.5x faster (1.2 against 1.8-2.3 ms) in a
        stream of calls; but sessions that take turns (a walk's pieces) then wait for each other's spinning threads
        on 2 cores: a batch-64 walk took 167 ms with spinning pieces against 53 ms without (the whole graph 42-51 ms)."""
        options = self._ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            session = self._ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        except self.runtime_errors as e:
            raise EngineUnavailable(f"ONNX Runtime refused the graph ({str(e).splitlines()[0]})") from e
        names = [i.name for i in session.get_inputs()]
        return lambda arrays: session.run(None, dict(zip(names, arrays)))


class OpenVinoEngine(OnnxEngine):
    name = "openvino"

    runtime_errors = (RuntimeError,)   # OpenVINO reports what it cannot read, compile or run as a RuntimeError

    def __init__(self, model, precision: str = "fp32", graphs=None):
        import openvino as ov
        try:
            self._core = ov.Core()
        except self.runtime_errors as e:   # no usable CPU plugin on this machine
            raise EngineUnavailable(f"OpenVINO cannot start here ({str(e).splitlines()[0]})") from e
        # A batch of PARTS_FROM or more runs in parts, one per thread (`_in_parts`); one thread: never.
        self.parts_from = PARTS_FROM if torch.get_num_threads() >= 2 else None
        super().__init__(model, precision, graphs)

    def _compiled(self, onnx_bytes: bytes, **hints):
        """The graph compiled for the CPU at this engine's precision, on all of torch's threads, with OpenVINO `hints`."""
        config = {"INFERENCE_PRECISION_HINT": "f32" if self.precision == "fp32" else "bf16",
                  "INFERENCE_NUM_THREADS": torch.get_num_threads(), **hints}
        try:
            return self._core.compile_model(self._core.read_model(onnx_bytes), "CPU", config)
        except self.runtime_errors as e:
            raise EngineUnavailable(f"OpenVINO refused the graph ({str(e).splitlines()[0]})") from e

    def compile(self, onnx_bytes: bytes):
        compiled = self._compiled(onnx_bytes, PERFORMANCE_HINT="LATENCY")
        request, lock = compiled.create_infer_request(), threading.Lock()
        outputs = compiled.outputs

        def run(arrays):
            with lock:   # one infer request per graph: calls from several threads take turns
                result = request.infer(arrays)
                return [np.array(result[o]) for o in outputs]
        return run

    def compile_whole(self, onnx_bytes: bytes):
        return self._in_parts(onnx_bytes, ids_every=None)

    def compile_early(self, onnx_bytes: bytes):
        return self._in_parts(onnx_bytes, ids_every=3)   # outputs (ids, F, confidence) per exit; ids index the batch

    def _in_parts(self, onnx_bytes: bytes, ids_every: int | None):
        """A batch of 16 or more images runs in parts of at least 8, one per torch thread (two here), each on its own
        stream of one thread, at the same time (OpenVINO's throughput mode): one request with every thread
        synchronises them at every layer, and on a shared 2-core machine that made its batch-64 speed swing by 1.5x
        (median 1,140 against 1,790 images/s in parts). Smaller batches, and every batch with one thread, keep the
        one-request form. The parts' outputs are joined in order; where every `ids_every`-th output holds sample
        indices, they are shifted by the part's start. A failed part leaves no request behind in a broken state: the
        requests are made anew and the error goes to the caller."""
        latency = self.compile(onnx_bytes)
        if self.parts_from is None:
            return latency
        streams = torch.get_num_threads()
        compiled = self._compiled(onnx_bytes, PERFORMANCE_HINT="THROUGHPUT", NUM_STREAMS=streams)
        outputs, lock = compiled.outputs, threading.Lock()
        requests = [compiled.create_infer_request() for _ in range(streams)]

        def run(arrays):
            n_parts = min(streams, len(arrays[0]) // (PARTS_FROM // 2))
            if n_parts < 2:
                return latency(arrays)
            chunks = np.array_split(arrays[0], n_parts)
            starts = np.cumsum([0] + [len(c) for c in chunks[:-1]])
            with lock:
                started, errors = [], []
                try:
                    for request, chunk in zip(requests, chunks):
                        request.start_async([chunk] + list(arrays[1:]))
                        started.append(request)
                except Exception as e:   # noqa: BLE001 - the parts already started are waited for first
                    errors.append(e)
                for request in started:
                    try:
                        request.wait()
                    except Exception as e:   # noqa: BLE001
                        errors.append(e)
                if errors:
                    requests[:] = [compiled.create_infer_request() for _ in range(streams)]
                    raise errors[0]
                parts = [[np.array(request.get_tensor(o).data) for o in outputs] for request in started]
            return [np.concatenate([parts[j][k] + (starts[j] if ids_every and k % ids_every == 0 else 0)
                                    for j in range(n_parts)]) for k in range(len(outputs))]
        return run
