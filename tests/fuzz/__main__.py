"""Run a fuzz target, a whole campaign, or rewrite the seed corpora.

    python -m tests.fuzz TARGET --runs N [--seconds S] [--crashes DIR] [--pure]
    python -m tests.fuzz TARGET --replay FILE...        # an input again, with tracebacks
    python -m tests.fuzz campaign [--scale F] [--crashes DIR]   # what make fuzz runs
    python -m tests.fuzz seeds                          # rewrite tests/fuzz/corpus
    python -m tests.fuzz install                        # pip-install pyproject's [fuzz]

Targets: gateway, codecs, config, rest. The engine is atheris (libFuzzer, coverage of the
ALG's Python code) when it is installed, else a seeded mutator of the corpus
(``--engine random`` asks for it). Findings are counted by class; the smallest input of
each class goes to ``--crashes`` with its traceback. ``--pure`` runs the ALG's Python
sources instead of its compiled extensions (atheris sees no coverage inside those).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.fuzz import engine

TARGETS = ("gateway", "codecs", "config", "rest")
MAX_LEN = {"gateway": 1024, "codecs": 1024, "config": 4096, "rest": 2048}
DEFAULT_WORKDIR = Path(tempfile.gettempdir()) / "ryu-pptp-alg-fuzz"
# make fuzz: inputs per (target, build). The gateway runs both builds: atheris guides the
# pure one by coverage, and the compiled one is what is deployed.
CAMPAIGN = (("gateway", False, 60_000), ("gateway", True, 20_000),
            ("codecs", False, 600_000), ("config", False, 150_000), ("rest", False, 200_000))


def load(target: str, instrument: bool, harness: bool = False) -> ModuleType:
    import ryu_pptp_alg  # noqa: F401  first: where the packet-in path loads from

    name = f"tests.fuzz.target_{target}"
    if not instrument:
        return importlib.import_module(name)
    import atheris

    # ``harness``: the harness too. Its branches are the operations a script reaches, the
    # only coverage there is when the ALG runs compiled (extensions are not instrumented).
    with atheris.instrument_imports(include=["ryu_pptp_alg", *(["tests"] if harness else [])]):
        return importlib.import_module(name)


def have_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def report(recorder: engine.Recorder, module: ModuleType, args: argparse.Namespace) -> None:
    from ryu_pptp_alg import compiled

    summary: dict[str, Any] = {**recorder.summary(), "build": compiled.BUILD,
                               "engine": args.engine}
    summary.update(getattr(module, "METRICS", {}))
    line = (f"fuzz {recorder.target} ({compiled.BUILD}, {args.engine}): {recorder.runs} inputs "
            f"in {summary['seconds']} s ({summary['per_second']}/s), "
            f"{sum(recorder.counts.values())} findings in {len(recorder.counts)} classes")
    print(line, flush=True)
    for cls, count in recorder.counts.most_common():
        print(f"  {count:8d}  {cls}", flush=True)
    for key, value in getattr(module, "METRICS", {}).items():
        print(f"  metric {key}: {value}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")


def fuzz(args: argparse.Namespace) -> None:
    use_atheris = args.engine == "atheris"
    from ryu_pptp_alg import compiled

    module = load(args.target, instrument=use_atheris,
                  harness=compiled.BUILD == compiled.COMPILED)
    recorder = engine.Recorder(args.target, args.crashes)
    max_len = args.max_len or MAX_LEN[args.target]
    if not use_atheris:
        engine.run_inputs(module.run, engine.random_inputs(args.target, args.seed, max_len),
                          recorder, args.runs, args.seconds)
        report(recorder, module, args)
        return
    import atheris

    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    every = max(1, min(10_000, args.runs // 20))

    def one_input(data: bytes) -> None:
        started = time.perf_counter()
        findings = engine.guarded(module.run, data)
        recorder.record(data, findings, time.perf_counter() - started)
        if recorder.runs % every == 0:
            print(f"  {args.target}: {recorder.runs} inputs, "
                  f"{len(recorder.counts)} finding classes", file=sys.stderr, flush=True)
        if recorder.runs >= args.runs or (deadline is not None and time.monotonic() > deadline):
            report(recorder, module, args)
            sys.stderr.flush()
            os._exit(0)  # libFuzzer's own exit path would count on and print its stats

    corpus = args.workdir / "corpus" / args.target  # libFuzzer adds what it finds here
    corpus.mkdir(parents=True, exist_ok=True)
    seeds = engine.CORPUS / args.target
    atheris.Setup([sys.argv[0], str(corpus), str(seeds), f"-max_len={max_len}",
                   f"-seed={args.seed or 1}", "-len_control=0", "-timeout=300",
                   "-rss_limit_mb=4096", "-print_final_stats=1"], one_input)
    atheris.Fuzz()


def replay(args: argparse.Namespace) -> None:
    module = load(args.target, instrument=False)
    for path in args.replay:
        findings = engine.guarded(module.run, Path(path).read_bytes())
        print(f"{path}: {len(findings)} findings")
        for finding in findings:
            print(f"--- {finding.cls}\n{finding.detail}")


def campaign(args: argparse.Namespace) -> None:
    """Every target, one after the other (one core), each in its own process (libFuzzer
    never returns); then the totals."""
    args.workdir.mkdir(parents=True, exist_ok=True)
    crashes = args.crashes or args.workdir / "crashes"
    results = []
    started = time.monotonic()
    for target, pure, runs in CAMPAIGN:
        runs = max(1, int(runs * args.scale))
        label = f"{target}{' (pure)' if pure else ''}"
        out = args.workdir / f"{target}{'-pure' if pure else ''}.json"
        log = args.workdir / f"{target}{'-pure' if pure else ''}.log"
        command = [sys.executable, "-m", "tests.fuzz", target, "--runs", str(runs),
                   "--crashes", str(crashes), "--json", str(out), "--workdir",
                   str(args.workdir), "--seed", str(args.seed), "--engine", args.engine]
        env = {**os.environ, "RYU_PPTP_ALG_PURE": "1"} if pure else os.environ.copy()
        print(f"== {label}: {runs} inputs (log: {log})", flush=True)
        with log.open("w") as stderr:
            subprocess.run(command, env=env, stderr=stderr, check=True)
        results.append((label, json.loads(out.read_text())))
    total = sum(r["runs"] for _, r in results)
    elapsed = time.monotonic() - started
    print(f"\n== campaign: {total} inputs in {elapsed:.0f} s, one core")
    print(f"{'target':18} {'build':36} {'inputs':>9} {'seconds':>8} {'per s':>7}  findings")
    classes: dict[str, int] = {}
    for label, result in results:
        print(f"{label:18} {result['build']:36} {result['runs']:9d} {result['seconds']:8.0f} "
              f"{result['per_second']:7.0f}  {sum(result['findings'].values())}")
        for cls, count in result["findings"].items():
            classes[f"{label}: {cls}"] = count
    print(f"\n{len(classes)} finding classes (inputs in {crashes}):")
    for cls, count in sorted(classes.items()):
        print(f"  {count:8d}  {cls}")
    (args.workdir / "campaign.json").write_text(json.dumps(
        {"inputs": total, "seconds": round(elapsed), "results": dict(results)}, indent=1) + "\n")


def install() -> None:
    """The ``fuzz`` extra of pyproject.toml (atheris). Without a wheel for this platform
    it may not install: the seeded mutator runs instead, which ``make fuzz`` says."""
    import tomllib

    with (engine.REPO / "pyproject.toml").open("rb") as f:
        requirements = tomllib.load(f)["project"]["optional-dependencies"]["fuzz"]
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", *requirements],
                          check=False)
    if done.returncode or not have_atheris():
        print("fuzz: atheris did not install; the seeded mutator (no coverage) runs instead",
              file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", choices=(*TARGETS, "campaign", "seeds", "install"))
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--crashes", type=Path, help="where each finding's smallest input goes")
    parser.add_argument("--engine", choices=("atheris", "random"),
                        default="atheris" if have_atheris() else "random")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pure", action="store_true", help="run the ALG's Python sources")
    parser.add_argument("--max-len", type=int)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--json", type=Path, help="write the run's summary here")
    parser.add_argument("--replay", nargs="+", help="run these inputs and show the findings")
    parser.add_argument("--scale", type=float, default=1.0, help="campaign: inputs times this")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # the ALG logs every bad input: millions of lines
    if args.pure:
        os.environ["RYU_PPTP_ALG_PURE"] = "1"  # read when ryu_pptp_alg is first imported
    if args.target == "install":
        install()
    elif args.target == "seeds":
        from tests.fuzz import seeds

        seeds.write_all()
    elif args.target == "campaign":
        campaign(args)
    elif args.replay:
        replay(args)
    else:
        fuzz(args)


if __name__ == "__main__":
    main()
