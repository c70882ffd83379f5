"""The `boostnet` command line (also `python -m boostnet_core`): train, evaluate, predict, calibrate, info, study, data download.

Every error a user can cause (errors.UserError) ends in one sentence on stderr and exit status 2, with nothing
written over; any other exception is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import fields
from pathlib import Path

from .criteria import CRITERIA
from .data import DATASETS
from .devices import DEVICES, pick_device
from .engines import ENGINES
from .errors import ArgumentError, TrainingError, UserError
from .models.presets import PRESETS


def _int_at_least(minimum: int):
    """An argparse type: a whole number >= minimum."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {text!r}")
        return value
    return parse


_positive_int, _count = _int_at_least(1), _int_at_least(0)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def _open_unit(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must lie strictly between 0 and 1, got {text!r}")
    return value


def _milestones(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected fractions like 0.5-0.75, got {text!r}") from None
    if not all(0 < v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"milestones are fractions of the epochs in (0, 1), got {text!r}")
    return values


def _val_size(text: str) -> float | int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or a fraction, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value if value < 1 else int(value)


def _thresholds(text: str) -> list[float]:
    """--threshold: thresholds.parse_thresholds (numbers, `none` for no exit here), its sentence as argparse's."""
    from .thresholds import parse_thresholds
    try:
        return parse_thresholds(text)
    except ArgumentError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _print_json(obj) -> None:
    """One line of strict JSON on stdout (no NaN or Infinity: other languages' parsers refuse them)."""
    print(json.dumps(obj, allow_nan=False))


def _corruptions(text: str) -> list[str]:
    """--corruption: names separated by commas, or all."""
    from .stress.corruptions import NAMES
    if text.strip() == "all":
        return list(NAMES)
    names = [t.strip() for t in text.split(",")]
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown corruption {unknown[0]!r}; choose from: {', '.join(NAMES)}, all")
    return names


def _severities(text: str) -> list[int]:
    if text.strip() == "all":
        return [1, 2, 3, 4, 5]
    if text.strip() not in ("1", "2", "3", "4", "5"):
        raise argparse.ArgumentTypeError(f"a severity is a whole number from 1 to 5, or all; got {text!r}")
    return [int(text)]


def _fraction(text: str) -> float:
    """A number in (0, 1], written as a decimal or a fraction such as 8/255."""
    try:
        top, _, bottom = text.partition("/")
        value = float(top) / float(bottom) if bottom else float(top)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a number or a fraction such as 8/255, got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must lie in (0, 1] (pixel units), got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="boostnet", description="BoostNet early-exit networks: train, evaluate, inspect.")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a BoostNet or joint-baseline model; a checkpoint every epoch")
    t.add_argument("--dataset", choices=DATASETS, default="digits")
    t.add_argument("--out", required=True, help="checkpoint folder to create (or continue with --resume)")
    t.add_argument("--preset", choices=sorted(PRESETS), help="model preset (default: the data set's own)")
    t.add_argument("--data-root", help="folder of cifar10/cifar100 (python release) or of a folder data set")
    t.add_argument("--method", choices=("boostnet", "joint"), default="boostnet")
    t.add_argument("--reweight", type=float, default=0.5, help="w in F_n = f_n + w F_{n-1} (default 0.5)")
    t.add_argument("--grad-rescale", choices=("auto", "on", "off"), default="auto",
                   help="MSDNet gradient rescaling; auto: on for boostnet, off for joint")
    t.add_argument("--epochs", type=_positive_int, default=3)
    t.add_argument("--batch-size", type=_positive_int, default=64, help="per process")
    t.add_argument("--lr", type=_positive_float, default=0.1)
    t.add_argument("--momentum", type=float, default=0.9)
    t.add_argument("--weight-decay", type=float, default=1e-4)
    t.add_argument("--schedule", choices=("cosine", "multistep"), default="cosine")
    t.add_argument("--milestones", type=_milestones, default=(0.5, 0.75), help="multistep: fractions, e.g. 0.5-0.75")
    t.add_argument("--val-size", type=_val_size, default=None,
                   help="held-out validation images: a count, a fraction, or 0 (default 5000 CIFAR, 10%% small sets)")
    t.add_argument("--split-seed", type=int, default=0)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--eval-test", action="store_true", help="also log test top-1 per exit after every epoch")
    t.add_argument("--train-limit", type=_int_at_least(10), help="train on a stratified sample of this many images")
    t.add_argument("--device", choices=DEVICES, default="auto")
    t.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across torchrun processes")
    t.add_argument("--workers", type=_count, default=4, help="loader processes for streamed (large-image) data")
    t.add_argument("--threads", type=_positive_int, help="CPU threads for this process")
    t.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    t.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: autocast forward and loss (faster on CPUs with bf16 and on GPUs; weights stay fp32)")
    t.add_argument("--channels-last", action="store_true",
                   help="channels-last feature maps (same maths; faster on GPUs, slower for training on a CPU)")
    t.add_argument("--compile", action="store_true",
                   help="torch.compile the forward pass (CUDA graphs on a GPU); falls back to eager with a warning")
    t.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    t.add_argument("--evaluate", action="store_true",
                   help="when training ends, evaluate the checkpoint as 'boostnet evaluate' does (results and cache)")

    e = sub.add_parser("evaluate", help="anytime and budgeted-batch evaluation; caches per-exit predictions")
    e.add_argument("checkpoint")
    e.add_argument("--dataset", choices=DATASETS, help="default: the data set the model was trained on")
    e.add_argument("--data-root", help="default: the one recorded at training")
    e.add_argument("--out", help="write the results JSON here")
    e.add_argument("--write", action="store_true",
                   help="replace CHECKPOINT/evaluation.json and its cache (written anyway when it has none yet)")
    e.add_argument("--batch-size", type=_positive_int, default=500)
    e.add_argument("--device", choices=DEVICES, default="auto")
    e.add_argument("--monotone", action="store_true", help="budgeted curve: repeat the last accuracy where validation does not improve")
    e.add_argument("--budget", type=_positive_float, action="append", help="also fit thresholds to an average budget of this many MACs (repeatable)")
    e.add_argument("--quiet", action="store_true")
    e.add_argument("--eager", action="store_true", help="run the model as trained, without the fast inference path")
    e.add_argument("--engine", choices=ENGINES, help="inference engine (default: auto, measured on this machine)")

    p = sub.add_parser("predict", help="early-exit prediction for image files")
    p.add_argument("checkpoint")
    p.add_argument("images", nargs="+")
    setting = p.add_mutually_exclusive_group()
    setting.add_argument("--threshold", type=_thresholds,
                         help="threshold on the criterion's score, one or one per exit separated by commas, 'none' "
                              "for no exit here (default 0.9; patience: t)")
    setting.add_argument("--certificate", metavar="FILE",
                         help="use the thresholds and criterion of a certificate written by 'calibrate --out'")
    p.add_argument("--criterion", choices=list(CRITERIA), default="max_softmax",
                   help="exit criterion (default max_softmax, the paper's; learned is fitted on the cached validation split)")
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--eager", action="store_true", help="run the model as trained, without the fast inference path")
    p.add_argument("--engine", choices=ENGINES, help="inference engine (default: auto, measured on this machine)")

    x = sub.add_parser("export", help="the model as ONNX files and a manifest, to serve without torch")
    x.add_argument("checkpoint")
    x.add_argument("--format", choices=("onnx",), default="onnx")
    x.add_argument("--out", required=True, help="folder to write (replaced if it holds an earlier export)")
    xs = x.add_mutually_exclusive_group()
    xs.add_argument("--threshold", type=_thresholds,
                    help="thresholds to record in the manifest, one or one per exit ('none': no exit here)")
    xs.add_argument("--certificate", metavar="FILE",
                    help="record a certificate's thresholds and guarantee in the manifest (max-softmax only)")

    c = sub.add_parser("calibrate", help="per-exit thresholds with a certified risk (Learn-then-Test on the cached validation split)")
    c.add_argument("checkpoint")
    c.add_argument("--risk", choices=("disagreement", "accuracy-drop"), required=True,
                   help="disagreement: early exit predicts another class than the last exit; accuracy-drop: the last "
                        "exit is right and early exit wrong")
    c.add_argument("--epsilon", type=_open_unit, required=True, help="the risk level to certify, in (0, 1)")
    c.add_argument("--delta", type=_open_unit, required=True, help="the chance the guarantee may fail, in (0, 1)")
    c.add_argument("--criterion", choices=list(CRITERIA), default="max_softmax", help="exit criterion (default max_softmax)")
    c.add_argument("--json", action="store_true")
    c.add_argument("--out", metavar="FILE", help="write the certificate (thresholds, guarantee, weights hash) here")

    i = sub.add_parser("info", help="exits, MACs per exit and parameters of a checkpoint or preset")
    i.add_argument("checkpoint", nargs="?")
    i.add_argument("--preset", choices=sorted(PRESETS))
    i.add_argument("--json", action="store_true")

    st = sub.add_parser("study", help="a grid of runs over methods, gradient rescaling and seeds, and its report")
    ssub = st.add_subparsers(dest="study_command", required=True)
    sr = ssub.add_parser("run", usage="boostnet study run ROOT [options] -- TRAINING FLAGS",
                         help="train and evaluate every run of a grid, several at a time; resumable",
                         description="Train and evaluate ROOT/<method>-rescale-<on|off>-seed<N> for every variant and "
                                     "seed. Flags after -- are passed to every 'boostnet train'. Running the same "
                                     "command again skips finished runs and resumes interrupted ones.")
    sr.add_argument("root", help="folder of the study (created); one checkpoint folder per run inside")
    sr.add_argument("--variants", nargs="+", default=["boostnet:on", "joint:off"],
                    help="METHOD:RESCALE cells (default: the paper's pair, boostnet:on joint:off)")
    sr.add_argument("--seeds", nargs="+", type=_count, default=[0, 1, 2])
    sr.add_argument("--jobs", type=_positive_int, default=2, help="runs at a time (CPU cores are split between them)")
    sr.add_argument("--progress-every", type=_positive_float, default=60.0, help="seconds between progress lines")
    sp = ssub.add_parser("report", help="statistics over seeds: mean, sd, paired intervals, McNemar; JSON, Markdown, PNG")
    sp.add_argument("roots", nargs="+", metavar="ROOT", help="folders holding finished runs (any depth), or run folders")
    sp.add_argument("--out", required=True, help="folder for report.json, report.md and report.png")
    sc = ssub.add_parser("criteria", help="exit criteria on the budgeted curve, BoostNet against joint, with intervals")
    sc.add_argument("--boostnet", nargs="+", required=True, help="BoostNet run folders (with logits cached), seed order")
    sc.add_argument("--joint", nargs="+", required=True, help="joint run folders, the same seeds in the same order")
    sc.add_argument("--out", required=True, help="JSON file for the comparison")

    ss = sub.add_parser("stress", help="early exit under common corruptions and slowdown attacks: accuracy, exits, "
                                       "MACs and certified risk against the clean images")
    ss.add_argument("checkpoint")
    ss.add_argument("--corruption", type=_corruptions, default=[],
                    help="a CIFAR-10-C corruption (comma-separated for several; a wrong name lists them) or all")
    ss.add_argument("--severity", type=_severities, default=None, help="1-5 or all (default all)")
    ss.add_argument("--attack", choices=("slowdown", "universal"), action="append", default=[],
                    help="slowdown: per-image PGD; universal: one perturbation crafted on other test images "
                         "(repeatable)")
    ss.add_argument("--epsilon", type=_fraction, default=8 / 255,
                    help="the attack's L-infinity size in pixel units [0, 1], e.g. 8/255 (the default) or 0.03")
    ss.add_argument("--steps", type=_positive_int,
                    help="PGD steps (default 30) or universal iterations (default 20)")
    ss.add_argument("--images", type=_positive_int, default=500, help="test images, drawn at random (default 500)")
    ss.add_argument("--seed", type=_count, default=0, help="draws the images and the corruptions' random numbers")
    ss.add_argument("--data-root", help="default: the one recorded at training")
    rule = ss.add_mutually_exclusive_group()
    rule.add_argument("--threshold", type=_thresholds,
                      help="max-softmax threshold, one or one per exit, 'none' for no exit here (default 0.9)")
    rule.add_argument("--budget", type=_positive_float,
                      help="thresholds fitted on the cached validation split to this many MACs on average")
    rule.add_argument("--certificate", metavar="FILE",
                      help="a certificate from 'calibrate --out': its thresholds and criterion, and its risk "
                           "observed under each condition against its epsilon")
    ss.add_argument("--batch-size", type=_positive_int, default=250)
    ss.add_argument("--device", choices=DEVICES, default="cpu")
    ss.add_argument("--json", action="store_true", help="the results as one JSON object")
    ss.add_argument("--out", metavar="FILE", help="also write the JSON here")
    ss.add_argument("--quiet", action="store_true", help="no progress bar")

    g = sub.add_parser("engines", help="which engine 'auto' runs for each use of a checkpoint on this machine, as "
                                       "measured (when, where, under what load); --measure measures again")
    g.add_argument("checkpoint")
    g.add_argument("--measure", action="store_true", help="measure every use now and keep the new picks")
    g.add_argument("--json", action="store_true")

    d = sub.add_parser("data", help="data sets")
    dsub = d.add_subparsers(dest="data_command", required=True)
    dl = dsub.add_parser("download", help="fetch and check the CIFAR python release")
    dl.add_argument("--dataset", choices=("cifar10", "cifar100"), required=True)
    dl.add_argument("--data-root", required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # `boostnet study run ROOT ... -- FLAGS`: what follows -- goes to every 'boostnet train' unparsed.
    shared = []
    if argv[:2] == ["study", "run"] and "--" in argv:
        cut = argv.index("--")
        argv, shared = argv[:cut], argv[cut + 1:]
    args = build_parser().parse_args(argv)
    args.train_args = shared
    # A warning is one line on the terminal ("boostnet: warning: ..."), not a source location and a line of code;
    # only while the command runs, so that main() called from Python leaves the caller's warnings as they were.
    import warnings
    shown = warnings.showwarning
    warnings.showwarning = lambda message, *_, **__: print(f"boostnet: warning: {message}", file=sys.stderr)
    try:
        return COMMANDS[args.command](args, argv)
    except BrokenPipeError:
        # The reader went away (`boostnet predict ... --json | head`): stop quietly, as Unix tools do.
        import os
        try:   # later writes (the interpreter's last flush) go nowhere instead of raising again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (AttributeError, OSError, ValueError):   # a stdout that is no file (an embedding program's)
            pass
        return 0
    # Errors the user can cause (errors.py), and the file system's (a path the user gave, a full disk): one sentence.
    # Anything else is a bug and keeps its traceback.
    except (UserError, OSError) as e:
        print(f"boostnet: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("boostnet: interrupted; the last finished epoch's checkpoint is kept.", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = shown


def _train(args, argv) -> int:
    import torch
    from .training import TrainConfig, train
    if args.threads:
        torch.set_num_threads(args.threads)
    # Every TrainConfig field has a flag of the same name (checked by a test), except these two.
    flags = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name not in ("progress", "command")}
    command = "boostnet " + shlex.join([a for a in argv if a != "--evaluate"])  # the run's identity, not what follows
    cfg = TrainConfig(**flags, progress=not args.quiet, command=command)
    out = train(cfg)
    if not args.quiet:
        print(f"saved {out}", file=sys.stderr)
    if args.evaluate:
        from .evaluation import evaluate_checkpoint
        evaluate_checkpoint(out, device=pick_device(args.device), progress=not args.quiet)
    return 0


def _evaluate(args, argv) -> int:
    from .evaluation import evaluate_checkpoint
    result = evaluate_checkpoint(args.checkpoint, dataset=args.dataset, data_root=args.data_root,
                                 device=pick_device(args.device), batch_size=args.batch_size,
                                 monotone=args.monotone, budgets=args.budget or [], progress=not args.quiet,
                                 fast=not args.eager, engine=args.engine, write=True if args.write else None)
    if args.out:
        from .atomic import atomic_write_json
        atomic_write_json(Path(args.out), result)
    if "note" in result:
        print(f"boostnet: note: {result['note']}", file=sys.stderr)
    _print_json({"macs": result["macs"], "anytime": result["anytime"]})
    return 0


def _predict(args, argv) -> int:
    from . import load_model
    from .inference import predict_files
    model = load_model(args.checkpoint, pick_device(args.device))
    criterion = args.criterion
    if args.certificate:
        from .certificate import read_certificate
        setting = read_certificate(args.certificate)
        setting.check_model(model, args.checkpoint)
        if criterion not in ("max_softmax", setting.criterion):   # max_softmax is the flag's default
            raise ArgumentError(f"The certificate is for the {setting.criterion} criterion; leave out --criterion.")
        criterion = None
    else:
        setting = args.threshold or [0.9]
        setting = setting[0] if len(setting) == 1 else setting
        if criterion == "learned":
            from .criteria import prepare
            from .evaluation import load_cache
            criterion = prepare(load_cache(args.checkpoint), "learned", args.checkpoint)[0]
    failed = 0
    for result in predict_files(model, args.images, setting, fast=not args.eager, criterion=criterion,
                                engine=args.engine):
        if "error" in result:   # an unreadable file: said once, and the other files still get their answer
            failed += 1
            print(f"boostnet: error: {result['error']}", file=sys.stderr)
            if args.json:
                _print_json(result)
        elif args.json:
            _print_json(result)
        else:
            print(f"{result['image']}: {result['label']} (exit {result['exit_index'] + 1}/{model.num_exits}, "
                  f"confidence {result['confidence']:.3f}, {result['macs'] / 1e6:.2f} M MACs)")
    return 2 if failed else 0


def _export(args, argv) -> int:
    from . import load_model
    from .export import export_onnx
    model = load_model(args.checkpoint)
    certificate = None
    if args.certificate:
        from .certificate import read_certificate
        certificate = read_certificate(args.certificate)
    thresholds = None
    if args.threshold:
        thresholds = args.threshold[0] if len(args.threshold) == 1 else args.threshold
    manifest = export_onnx(model, args.out, thresholds, source=str(args.checkpoint), certificate=certificate)
    _print_json({"out": str(args.out), "files": [manifest["whole"]["file"], manifest["early_exit"]["file"]]
                 + [p["file"] for p in manifest["pieces"]]})
    return 0


def _calibrate(args, argv) -> int:
    from .calibration import calibrate_checkpoint
    from .thresholds import format_thresholds
    result = calibrate_checkpoint(args.checkpoint, args.risk, args.epsilon, args.delta, args.criterion)
    if args.out:
        from .certificate import write_certificate
        write_certificate(result, args.out)
    if args.json:
        _print_json(result)
        return 0
    test = result["test"]
    print(f"{result['guarantee']} ({result['criterion']} criterion; tested on {result['calibration']['images']} "
          f"validation images, family fitted on {result['calibration']['family_images']})")
    # Exact (shortest repr, 'none' = no exit here): what --threshold of predict and export accept unchanged.
    print("thresholds: " + format_thresholds(result["thresholds"]))
    if not result["nontrivial"]:
        print("no cheaper thresholds could be certified at this level: every image goes to the last exit")
    print(f"test split: {result['risk']} {100 * test['risk']:.2f}%, top-1 {test['top1']:.2f}% "
          f"(last exit {test['last_exit_top1']:.2f}%), {test['avg_macs'] / 1e6:.2f} M MACs "
          f"({100 * test['cost_ratio']:.0f}% of the full network)")
    if args.out:
        print(f"certificate written to {args.out} (weights {result['weights_sha256'][:12]}...)")
    return 0


def _info(args, argv) -> int:
    if bool(args.checkpoint) == bool(args.preset):
        raise ArgumentError("Give either a checkpoint folder or --preset NAME (one of them).")
    info = model_info(args.checkpoint, args.preset)
    if args.json:
        _print_json(info)
    else:
        print(f"{info['name']}: {info['arch']}, {info['exits']} exits, {info['params'] / 1e6:.3f} M parameters")
        for k, m in enumerate(info["macs"]):
            print(f"  exit {k + 1}: {m / 1e6:10.2f} M MACs (cumulative)")
    return 0


def _study(args, argv) -> int:
    from . import study
    if args.study_command == "report":
        from .study.report import write_report
        report = write_report(args.roots, args.out)
        print(f"report of {sum(len(r['variants']) for r in report['recipes'])} variants in {args.out}")
        return 0
    if args.study_command == "criteria":
        from .study.criteria_compare import write_comparison
        result = write_comparison(args.boostnet, args.joint, args.out)
        print(f"{len(result['criteria'])} criteria at {len(result['shares'])} budgets in {args.out}")
        return 0
    train_args = args.train_args
    # The shared flags are parsed here as 'boostnet train' would, so that a typo stops before anything starts.
    train_flags = build_parser().parse_args(["train", "--out", "unused", *train_args])
    variants = [study.Variant.parse(v) for v in args.variants]
    runs = study.plan(args.root, variants, args.seeds, train_args, train_flags.epochs)
    failed = study.run_study(runs, train_args, jobs=args.jobs, progress_every=args.progress_every)
    if failed:
        raise TrainingError(f"{len(failed)} run(s) failed ({', '.join(failed)}); their logs are beside them in {args.root}.")
    return 0


def _data(args, argv) -> int:
    from .data import download_cifar
    folder = download_cifar(args.dataset, args.data_root)
    print(f"{args.dataset} is ready in {folder}")
    return 0


def _stress(args, argv) -> int:
    import torch
    from . import load_model
    from .stress import ExitRule, attack, corruption, stress_images, stress_test
    from .thresholds import thresholds_to_json
    if not args.corruption and not args.attack:
        raise ArgumentError("Give --corruption NAME|all, --attack slowdown|universal, or both.")
    if args.severity is not None and not args.corruption:
        raise ArgumentError("--severity applies to corruptions; give --corruption too.")
    model = load_model(args.checkpoint, pick_device(args.device))
    if args.certificate:
        from .certificate import read_certificate
        cert = read_certificate(args.certificate)
        cert.check_model(model, args.checkpoint)
        rule = ExitRule.of(list(cert.thresholds), model.num_exits, cert.criterion_object(), cert.risk, cert.epsilon)
    elif args.budget:
        from .evaluation import load_cache
        from .thresholds import fit_to_budget
        cache = load_cache(args.checkpoint)
        if "val" not in cache:
            raise ArgumentError(f"{args.checkpoint} has no cached validation split to fit a budget on; evaluate it "
                                "with 'boostnet evaluate' (trained with --val-size > 0), or give --threshold.")
        rule = ExitRule.of(fit_to_budget(cache["val"], model.macs, args.budget), model.num_exits)
    else:
        t = args.threshold or [0.9]
        rule = ExitRule.of(t[0] if len(t) == 1 else t, model.num_exits)
    conditions = [corruption(name, s) for name in args.corruption for s in (args.severity or [1, 2, 3, 4, 5])]
    conditions += [attack(name, args.epsilon, args.steps) for name in args.attack]
    crafting = args.images if "universal" in args.attack else 0   # as many other images to craft on
    images, labels, keys, others = stress_images(model, args.images, args.data_root, args.seed, crafting)
    bar, current = None, []
    if not args.quiet:
        from tqdm import tqdm
        bar = tqdm(total=len(conditions) + 1, desc="stress", unit="condition", file=sys.stderr)

    def starting(name):   # a condition starts: the one before it is done
        if bar is not None:
            bar.update(1 if current else 0)
            bar.set_postfix_str(name)
        current[:] = [name]

    def attack_step(done, total):
        if bar is not None:
            bar.set_postfix_str(f"{current[0]}, step {done} of {total}")
    result = stress_test(model, torch.from_numpy(images), labels, conditions, rule, keys=keys, seed=args.seed,
                         crafting=torch.from_numpy(others) if len(others) else None, batch_size=args.batch_size,
                         progress=starting, attack_progress=attack_step)
    if bar is not None:
        bar.update(1)
        bar.close()
    result = {"checkpoint": str(args.checkpoint), "images": len(images), "seed": args.seed,
              "thresholds": thresholds_to_json(rule.thresholds),
              "criterion": rule.criterion.name, **result}
    text = json.dumps(result, allow_nan=False)
    if args.out:
        from .atomic import atomic_write_bytes
        atomic_write_bytes(Path(args.out), (text + "\n").encode())
    if args.json:
        print(text)
        return 0
    print(_stress_table(result))
    return 0


def _stress_table(result: dict) -> str:
    """The conditions as a text table: early exit's top-1, MACs, the share at the last exit, the certified risk."""
    from .thresholds import format_thresholds
    rows = [("clean", result["clean"])] + [
        (f"{c['name']} {c['severity']}" if c["kind"] == "corruption" else f"{c['name']} attack", c)
        for c in result["conditions"]]
    risk = "risk" in result["clean"]
    lines = [f"{result['images']} test images of {result['checkpoint']}; thresholds "
             + format_thresholds(result["thresholds"]),
             f"{'condition':24s} {'top-1':>7s} {'last exit':>9s} {'MACs':>9s} {'share':>6s} {'at last':>7s}"
             + ("  risk / epsilon" if risk else "")]
    for name, r in rows:
        line = (f"{name:24s} {r['top1_at_exits']:6.2f}% {r['top1'][-1]:8.2f}% {r['mean_macs'] / 1e6:8.2f}M "
                f"{100 * r['macs_share']:5.1f}% {100 * r['last_exit_share']:6.1f}%")
        if risk:
            held = "held" if r["risk"]["held"] else "BROKEN"
            line += f"  {r['risk']['observed']:.4f} / {r['risk']['epsilon']:g} {held}"
        lines.append(line)
    return "\n".join(lines)


def model_info(checkpoint: str | None, preset: str | None) -> dict:
    """Exits, cumulative MACs and parameters, without data or training."""
    if checkpoint:
        from . import load_model
        model = load_model(checkpoint)
        name = checkpoint
    else:
        import torch
        from . import create_model
        # Built without its random initial values (seconds for the ImageNet presets): on the meta device, then given
        # uninitialised memory, which the MAC count's forward pass reads but whose values it never uses (the count
        # depends on the shapes alone; a forward pass on the meta device itself is slower).
        with torch.device("meta"):
            model = create_model(preset)
        model.to_empty(device="cpu")
        name = preset
    return {"name": name, "arch": model.meta["arch"], "preset": model.meta.get("preset"), "method": model.method,
            "reweight": model.reweight, "exits": model.num_exits, "macs": model.macs,
            "params": sum(p.numel() for p in model.parameters()), "input_size": model.meta["input_size"],
            "num_classes": model.num_classes}


def _engines(args, argv) -> int:
    from . import load_model
    from .engines import prepare_inference
    from .engines.registry import disk_of
    model = load_model(args.checkpoint)
    disk = disk_of(model)
    if args.measure:
        table = prepare_inference(model, "auto").measure_all()
    else:
        table = disk.picks("fp32")
    kept = disk.folder is not None
    if args.json:
        _print_json({"checkpoint": args.checkpoint, "picks": table, "kept_in": str(disk.folder) if kept else None})
        return 0
    if not table:
        print(f"Nothing measured yet on this machine for these weights; 'boostnet engines {args.checkpoint} "
              "--measure' measures every use (or the first prediction measures its own use).")
        return 0
    for use, pick in sorted(table.items()):
        seconds = ", ".join(f"{name} {1e3 * s:.2f} ms" for name, s in sorted(pick["seconds"].items(), key=lambda kv: kv[1]))
        when = pick.get("measured") or {}
        load = when.get("load_average_1min")
        print(f"{use:14s} {pick['engine']:12s} ({seconds or 'the only candidate'}); measured {when.get('at', '?')} "
              f"on {when.get('host', '?')}, {when.get('torch_threads', '?')} threads, load "
              f"{'?' if load is None else f'{load:.2f}'}")
        plan = pick.get("exit_plan")
        if plan:   # what auto.ExitPlan weighs call by call
            per_exit = " / ".join(f"{1e3 * s:.2f}" for s in plan["one_graph_by_exit"])
            print(f"{'':14s} early exit: one graph {per_exit} ms with every sample leaving at exit 1 / 2 / ...; the "
                  f"whole network, exits chosen after: {1e3 * plan['whole_then_choose']:.2f} ms")
    print("Kept in " + (str(disk.folder) if kept else "nothing (BOOSTNET_ENGINE_CACHE=off or no cache folder)") +
          f"; measure again on a quiet machine with: boostnet engines {args.checkpoint} --measure")
    return 0


COMMANDS = {"train": _train, "evaluate": _evaluate, "predict": _predict, "export": _export, "calibrate": _calibrate,
            "info": _info, "study": _study, "data": _data, "stress": _stress, "engines": _engines}
