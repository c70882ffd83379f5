"""Shared fixtures: a digits model trained once per session (a few seconds on CPU)."""
import fcntl
import functools
import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
CIFAR10_JPG = SHARED_DATA / "cifar10-jpg"

# The default engine "auto" exports, compiles and times every engine per model (seconds for the shipped CIFAR-10
# model); the suite's other tests, and the app's server they start, run the eager model as trained ("torch": nothing to
# prepare), and tests/test_engines.py and tests/test_fast_inference.py test "auto" and every other engine themselves.
os.environ.setdefault("BOOSTNET_ENGINE", "torch")
# Nor do they read or leave engine graphs and auto's picks in the user's cache (engines/disk_cache.py): a pick kept by
# an earlier run would skip the measuring that tests/test_engines.py tests; the cache's own tests turn it on.
os.environ["BOOSTNET_ENGINE_CACHE"] = "off"   # not setdefault: a developer's own setting must not reach the suite
# The app's pages (AppTest, and the browser test's server, which inherits this) see what a fresh clone sees: no
# CIFAR-10 images, so the shipped sample, on a developer's machine as in CI; with the development copy beside the
# project, the same tests took another path there, and a first run decoded its 10,000 test images (3 s of CPU).
# The tests of the data itself read ../shared/data directly (CIFAR10_JPG) and skip without it.
os.environ["BOOSTNET_DATA_ROOT"] = str(REPO / "no-data-root-in-the-tests")   # a folder that does not exist

# Under pytest-xdist each worker gets its share of the cores (two workers on two cores: one thread each).
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
TEST_THREADS = max(1, min(2, (os.cpu_count() or 1) // WORKERS))


def pytest_configure(config):
    """Torch's thread count in every process that runs tests; pytest-xdist's controller only deals the tests out and
    never imports torch (two seconds of CPU while its workers start)."""
    if getattr(config, "workerinput", None) is None and config.getoption("numprocesses", default=0):
        return
    import torch
    torch.set_num_threads(TEST_THREADS)


def pytest_collection_modifyitems(items):
    """The browser test first, then the slow tests (stable order otherwise): pytest-xdist deals the files out in the
    order of their first test, and a long file dealt last would keep one worker busy while the other idles."""
    items.sort(key=lambda item: (item.get_closest_marker("xdist_group") is None,
                                 item.get_closest_marker("slow") is None))


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """Code under test may set torch's thread count (the CLI's --threads, the app); later tests must not inherit it."""
    yield
    import torch
    torch.set_num_threads(TEST_THREADS)


def built_once(tmp_path_factory, name: str, build) -> Path:
    """The folder `name`, built by `build(folder)` once per test run: pytest-xdist's workers share it through their
    common temporary folder; the first to arrive builds it while the others wait on a lock. A build that failed
    part-way leaves no mark of completion, and the next worker to arrive builds it again from scratch."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent   # the folder all workers of this run share
    out, done = root / name, root / f"{name}.built"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            build(out)
            done.touch()
    return out


@pytest.fixture(scope="session")
def digits_checkpoint(tmp_path_factory) -> Path:
    from boostnet_core.training import TrainConfig, train
    return built_once(tmp_path_factory, "digits-checkpoint", lambda out: train(TrainConfig(
        dataset="digits", out=str(out), epochs=3, progress=False, command="boostnet train --dataset digits --epochs 3")))


@pytest.fixture
def digits_copy(digits_checkpoint, tmp_path) -> Path:
    """A private copy of the session checkpoint that a test may damage."""
    dst = tmp_path / "copy"
    shutil.copytree(digits_checkpoint, dst)
    return dst


@pytest.fixture(scope="session")
def digits_model(digits_checkpoint):
    from boostnet_core import load_model
    return load_model(digits_checkpoint)


def share_apptest_work_once() -> None:
    """Work every new AppTest repeats although nothing it depends on changes while the tests run, done once per process:
    - the scan of every installed package's metadata for Streamlit components (0.2 s of CPU per AppTest);
    - the compiling of the page's script: AppTest gives each run a new, empty script cache, so every `at.run()` read
      and compiled its page again. Here the compiled code is kept per file's content."""
    from streamlit.components.v2 import manifest_scanner
    from streamlit.runtime.scriptrunner import script_cache
    scan = manifest_scanner.scan_component_manifests
    if not hasattr(scan, "cache_info"):
        cached = functools.cache(scan)
        manifest_scanner.scan_component_manifests = functools.wraps(scan)(lambda *a, **k: list(cached(*a, **k)))
        manifest_scanner.scan_component_manifests.cache_info = cached.cache_info
    compile_script = script_cache.ScriptCache.get_bytecode
    if not hasattr(compile_script, "compiled"):
        compiled: dict = {}

        def get_bytecode(self, script_path: str):
            from streamlit import config
            source = Path(script_path).read_bytes()   # the key: the file's content and what compiling depends on
            key = (os.path.abspath(script_path), hashlib.sha256(source).digest(),
                   config.get_option("runner.magicEnabled"))
            if key not in compiled:
                compiled[key] = compile_script(self, script_path)
            return compiled[key]
        get_bytecode.compiled = compiled
        script_cache.ScriptCache.get_bytecode = get_bytecode


@functools.lru_cache(maxsize=1)
def ambiguous_digit():
    """A blend of two MNIST test digits whose exit differs between thresholds 0 and 1 (found with the library)."""
    from boostnet_core import load_model
    from boostnet_core.data import load_dataset
    from boostnet_core.inference import preprocess_image, trace
    model = load_model(REPO / "checkpoints" / "mnist5k-boostnet")
    test = load_dataset("mnist5k").test.images[:, 0].numpy().astype(np.float32)
    for i in range(40):
        img = Image.fromarray(((test[i] + test[i + 40]) / 2).astype(np.uint8))
        x = preprocess_image(img, model.meta)
        low, high = trace(model, x, 0.0)["exit_index"], trace(model, x, 1.0)["exit_index"]
        if low != high:
            return img, low, high
    raise AssertionError("no ambiguous blend found")
