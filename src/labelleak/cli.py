"""Command line: parse options, call the pipeline, turn labelleak errors into one clear line and exit code 2.

Exit codes: 0 done, 2 a labelleak error (bad option, file, budget), 3 a remote target that stayed unavailable
after every retry (resumable with ``--resume``), 4 an audit whose eps_LB is above ``--fail-above-epsilon`` (every
file written), 130 interrupted (resumable).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

from labelleak.errors import LabelleakError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Measure how much a model leaks about its training data through its predicted labels.",
)
_err = Console(stderr=True)


def _fail(exc: Exception) -> None:
    from rich.markup import escape

    _err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)  # "[...]" is no markup
    raise typer.Exit(code=2)


def _apply_quiet(quiet: bool) -> None:
    if quiet:
        from labelleak.logs import quiet_console

        quiet_console()


def _show_version(value: bool) -> None:
    if value:
        from labelleak._version import __version__

        Console().print(f"labelleak {__version__}", highlight=False)
        raise typer.Exit()


EXIT_OUTAGE = 3  # the remote target stayed unreachable after every retry; resumable
EXIT_LEAKS = 4  # the audit's eps_LB is above --fail-above-epsilon (results written)


def _outage(exc: Exception, *, journaled: bool) -> None:
    """Exit 3 with the command that continues the audit once the target is back."""
    import shlex

    _err.print(f"[bold red]error:[/] remote target unavailable: {exc}", highlight=False, soft_wrap=True)
    if journaled:
        args = [a for a in sys.argv[1:] if a not in ("--resume", "--fresh")]  # --fresh again would delete them
        _err.print(
            "the answers received so far are journaled; when the target is back, continue with:\n  "
            + shlex.join(["labelleak", *args, "--resume"]),
            highlight=False,
            soft_wrap=True,
        )
    else:
        _err.print("(--no-checkpoint: nothing was journaled; rerun from the start)", highlight=False)
    raise typer.Exit(code=EXIT_OUTAGE)


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug messages of the library on stderr."),
    log_file: Path | None = typer.Option(None, "--log-file", help="Also write every library message to this file."),
) -> None:
    """labelleak: label-only membership-inference audits."""
    from labelleak.logs import configure_logging

    configure_logging(verbose=verbose, log_file=log_file, console=_err)


def _setting_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command`` one option per audit setting that declares one (:mod:`labelleak.pipeline.sections`), with
    its help, under its section's heading in ``--help``; the command receives the options given as ``settings``
    (key -> value; a switch such as ``--no-checkpoint`` as the value it sets)."""
    import dataclasses
    import functools
    import inspect
    from typing import get_type_hints

    from labelleak.pipeline.config import SECTIONS
    from labelleak.pipeline.fields import setting_of

    added, flips = [], {}
    for key, section in SECTIONS.items():
        hints = get_type_hints(section)
        for f in dataclasses.fields(section):
            declared = setting_of(f)
            if not declared.cli:
                continue
            base = next((t for t in (bool, int, float) if hints[f.name] in (t, t | None)), str)
            panel = key.replace("_", " ").capitalize()
            if base is bool:  # a switch: given, it sets the opposite of the default
                flips[f.name] = not f.default
                option = typer.Option(False, declared.option(f.name), help=declared.help, rich_help_panel=panel)
                added.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=bool))
                continue
            option = typer.Option(None, declared.option(f.name), help=declared.help, rich_help_panel=panel)
            kind = inspect.Parameter.KEYWORD_ONLY
            added.append(inspect.Parameter(f.name, kind, default=option, annotation=base | None))
    names = [p.name for p in added]

    @functools.wraps(command)
    def with_settings(**options: Any) -> None:
        given = {k: options.pop(k) for k in names}
        settings = {k: flips[k] if k in flips else v for k, v in given.items() if v is not None and v is not False}
        command(settings=settings, **options)

    own = [p for p in inspect.signature(command).parameters.values() if p.name != "settings"]
    with_settings.__signature__ = inspect.Signature([*own, *added])  # type: ignore[attr-defined]
    return with_settings


@app.command()
@_setting_options
def audit(
    settings: dict[str, Any],
    config: Path | None = typer.Option(None, "--config", help="YAML file with the same keys as these options."),
    estimate: bool = typer.Option(False, "--estimate", help="Print the queries each attack will spend, then exit."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars, only warnings and errors on stderr."),
) -> None:
    """Audit a target (trained here, a model file with --model, or a URL with --target): run the attacks and write
    results.json, scores.csv, roc.png and report.html."""
    _apply_quiet(quiet)
    from labelleak.errors import RemoteOutageError
    from labelleak.pipeline import make_config, run_audit
    from labelleak.pipeline.checkpoint import Interrupted
    from labelleak.report import print_audit_table

    try:
        cfg = make_config(config, **settings, progress=False if quiet else None)
        if estimate:
            from labelleak.pipeline.estimate import estimate as estimate_queries
            from labelleak.pipeline.estimate import format_estimate

            typer.echo(format_estimate(estimate_queries(cfg), cfg.max_total_queries))
            if cfg.repeats > 1:
                typer.echo(
                    f"--repeats {cfg.repeats}: {cfg.repeats} audits like this one, up to {cfg.repeats}x the queries"
                )
            return
        if cfg.repeats > 1:
            from labelleak.pipeline.repeats import run_repeats
            from labelleak.report.repeats import print_repeats_table

            print_repeats_table(run_repeats(cfg))
            Console().print(
                f"results written to {cfg.out}/ (repeats.json, report.html; each seed's audit in seed-<s>/)"
            )
            return
        results = run_audit(cfg)
    except RemoteOutageError as exc:
        _outage(exc, journaled=settings.get("checkpoint", True))
        return
    except LabelleakError as exc:
        _fail(exc)
        return
    except Interrupted as stop:
        _stopped(stop.folder)
    except KeyboardInterrupt:  # before any attack ran (data, training): no answers to keep, trained models are cached
        _err.print(
            "interrupted during setup, before any attack ran: run the same command again (trained models are cached)",
            soft_wrap=True,
        )
        raise typer.Exit(code=130) from None
    print_audit_table(results)
    Console().print(f"results written to {cfg.out}/")
    if (results.get("verdict") or {}).get("fails"):
        eps = results["verdict"]["eps_lb"]
        _err.print(f"eps_LB {eps:.3f} is above --fail-above-epsilon {cfg.fail_above_epsilon:g}", highlight=False)
        raise typer.Exit(code=EXIT_LEAKS)


@app.command()
def defend(
    defenses: str | None = typer.Option(
        None,
        help="Comma-separated defenses; combine with '+', e.g. l2=5e-4+augment (default "
        "none,l2=5e-4,dropout=0.5,dp=8,memguard=1). With --sweep: the families to sweep (default all).",
    ),
    sweep: bool = typer.Option(False, "--sweep", help="Train each defense family at a grid of strengths."),
    grid: list[str] = typer.Option([], "--grid", help="Sweep strengths of one family, e.g. --grid l2=[1e-4,1e-3]."),
    target_tpr: float = typer.Option(
        0.01, help="Recommend the most accurate defense whose label-only TPR@1%FPR upper 95% bound is below."
    ),
    target_auc: float | None = typer.Option(None, help="... and, when given, label-only AUC upper bound below this."),
    target_epsilon: float | None = typer.Option(
        None, help="... and, when given, an accountant epsilon at most this (eps_LB above it refutes it)."
    ),
    config: Path | None = typer.Option(None, "--config", help="YAML file with audit keys."),
    dataset: str | None = typer.Option(None, help="Dataset (default digits)."),
    data: str | None = typer.Option(None, help="Path of the dataset."),
    arch: str | None = typer.Option(None, help="Target architecture."),
    width: float | None = typer.Option(None, help="Width multiplier."),
    epochs: int | None = typer.Option(None, help="Training epochs."),
    train_size: int | None = typer.Option(None, help="Target training-set size."),
    eval_size: int | None = typer.Option(None, help="Member and non-member candidates each."),
    canaries: int | None = typer.Option(
        None, help="One-run DP audit of each defense's training: M canaries, each trained on by its own coin."
    ),
    attacks: str | None = typer.Option("gap,transfer,boundary-hsja,score-loss", help="Attacks to run."),
    queries: int | None = typer.Option(None, help="Per-candidate query budget."),
    seed: int | None = typer.Option(None, help="Seed."),
    out: str = typer.Option("defend-out", help="Output folder."),
    cache_dir: str | None = typer.Option(None, help="Model cache."),
    backend: str | None = typer.Option(None, help="local (default) or ray: targets trained on Ray workers."),
    ray_address: str | None = typer.Option(None, help="Ray cluster: auto or ray://HOST:PORT (default: local Ray)."),
    workers: int | None = typer.Option(None, help="Ray workers."),
    worker_cpus: float | None = typer.Option(None, help="CPUs per Ray worker (default 1)."),
    worker_gpus: float | None = typer.Option(None, help="GPUs per Ray worker (default 0)."),
    resume: bool = typer.Option(False, "--resume", help="Skip finished defenses and continue an interrupted one."),
    fresh: bool = typer.Option(False, "--fresh", help="Start an unfinished defense over, deleting its answers."),
    non_adaptive: bool = typer.Option(
        False, "--non-adaptive", help="Attack as an adversary unaware of each defense (default: it knows them)."
    ),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars, only warnings and errors on stderr."),
) -> None:
    """Train the target under each defense, attack it, and write the defense matrix (JSON, CSV, Markdown, PNG)
    with the most accurate defense shown (by 95% upper bounds) to bring the label-only attacks below --target-tpr."""
    _apply_quiet(quiet)
    from labelleak.pipeline import make_config
    from labelleak.pipeline.checkpoint import Interrupted
    from labelleak.pipeline.defend import run_defend

    try:
        chosen = _chosen_defenses(defenses, sweep=sweep, grid=grid)
        cfg = make_config(
            config,
            dataset=dataset,
            data=data,
            arch=arch,
            width=width,
            epochs=epochs,
            train_size=train_size,
            eval_size=eval_size,
            canaries=canaries,
            attacks=attacks,
            queries=queries,
            seed=seed,
            out=out,
            cache_dir=cache_dir,
            **_switches(resume=resume, fresh=fresh, non_adaptive=non_adaptive),
            progress=False if quiet else None,
            backend=backend,
            ray_address=ray_address,
            workers=workers,
            worker_cpus=worker_cpus,
            worker_gpus=worker_gpus,
        )
        rows = run_defend(cfg, chosen, target_tpr=target_tpr, target_auc=target_auc, target_epsilon=target_epsilon)
    except LabelleakError as exc:
        _fail(exc)
        return
    except Interrupted as stop:
        _stopped(stop.folder)
    targets = dict(target_tpr=target_tpr, target_auc=target_auc, target_epsilon=target_epsilon)
    _print_matrix(rows, list(cfg.attacks), out, targets)


def _switches(**flags: bool) -> dict[str, bool | None]:
    """On/off options as configuration overrides: a switch left off is "not given" (the config file decides)."""
    return {name: True if on else None for name, on in flags.items()}


def _stopped(folder: Path | str) -> NoReturn:
    """Ctrl-C during a run that checkpoints: say where its progress is and exit 130."""
    _err.print(f"interrupted: progress saved in {folder}; run the same command with --resume to continue")
    raise typer.Exit(code=130) from None


def _chosen_defenses(defenses: str | None, *, sweep: bool, grid: list[str]) -> list[str]:
    """The defense strings of ``--defenses`` (default: one of each kind), or with ``--sweep`` their grids."""
    from labelleak.defenses import sweep_defenses

    names = [d.strip() for d in defenses.split(",") if d.strip()] if defenses is not None else None
    if sweep:
        return sweep_defenses(names, grid)
    if grid:
        raise LabelleakError("--grid needs --sweep")
    return names or ["none", "l2=5e-4", "dropout=0.5", "dp=8", "memguard=1"]


def _print_matrix(rows: list[dict[str, Any]], attacks: list[str], out: str, targets: dict[str, Any]) -> None:
    """The defense matrix as a table, the recommendation, and where the files are."""
    from rich.markdown import Markdown

    from labelleak.defenses import recommend
    from labelleak.report.markdown import matrix_markdown

    Console(width=160).print(Markdown(matrix_markdown(rows, attacks)))
    Console().print(recommend(rows, attacks, **targets).statement())
    Console().print(
        f"matrix written to {out}/ (matrix.json, matrix.csv, matrix.md, privacy_utility.png, pareto.png, report.html)"
    )


@app.command()
def serve(
    model: Path = typer.Option(
        ..., help="The model to serve: .onnx, .pt2, TorchScript, .skops, or a labelleak model folder."
    ),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="TCP port."),
    input_shape: str | None = typer.Option(None, help="One sample's shape, channels first (torch files need it)."),
    n_classes: int | None = typer.Option(None, help="Number of classes, when the model answers labels."),
    bounds: str | None = typer.Option(None, help="The input range LOW,HIGH (default 0,1)."),
    mean: str | None = typer.Option(None, help="Per-channel mean the model subtracts, e.g. 0.5,0.5,0.5."),
    std: str | None = typer.Option(None, help="Per-channel std the model divides by."),
    layout: str | None = typer.Option(None, help="nchw (default) or nhwc (channels-last exports)."),
    output: str | None = typer.Option(None, help="The ONNX output with labels or class scores."),
    trust: str | None = typer.Option(None, help=".skops: extra type names to trust, comma-separated."),
    v2_name: str | None = typer.Option(None, help="Also serve the Open Inference Protocol (v2) under this name."),
    api_key_env: str | None = typer.Option(None, help="Require the API key held in this environment variable."),
    max_batch: int = typer.Option(4096, help="Largest batch one request may carry."),
    rate_limit: float | None = typer.Option(None, help="Samples per second per client (API key, else address)."),
    max_connections: int = typer.Option(256, help="Open connections at once; more get 503."),
    fault_rate: float = typer.Option(0.0, help="Testing: fraction of predictions answered 500/429 or delayed."),
    latency: float = typer.Option(0.0, help="Testing: seconds added to every prediction (a slow remote service)."),
) -> None:
    """Serve a model as a label-only HTTP API (POST /predict answers labels, nothing else; --v2-name adds v2).

    The model is opened as `labelleak audit --model` opens it, with the same preprocessing options."""
    try:
        uvicorn, limits = _checked_serve_options(
            port=port,
            max_batch=max_batch,
            rate_limit=rate_limit,
            fault_rate=fault_rate,
            latency=latency,
            max_connections=max_connections,
        )
        preprocessing = dict(
            input_shape=input_shape,
            n_classes=n_classes,
            bounds=bounds,
            mean=mean,
            std=std,
            layout=layout,
            output=output,
            trust=trust,
        )
        app_ = _served_app(model, preprocessing, api_key_env, limits, fault_rate, latency, v2_name)
    except LabelleakError as exc:
        _fail(exc)
        return
    from labelleak.serve.guards import server_config

    config = server_config(
        app_,
        host=host,
        port=port,
        header_timeout=limits.header_timeout,
        max_connections=limits.max_connections,
        log_per_second=limits.log_per_second,
    )
    uvicorn.Server(config).run()


def _checked_serve_options(**options: Any) -> tuple[Any, Any]:
    """uvicorn (the serve extra) and the server's limits, after every option is checked in one error."""
    from labelleak._extras import require

    uvicorn = require("uvicorn", "serve", "labelleak serve")
    from labelleak.serve import ServeLimits
    from labelleak.serve.guards import check_serve_options

    check_serve_options(**options)
    limits = ServeLimits(
        max_batch=options["max_batch"], rate_limit=options["rate_limit"], max_connections=options["max_connections"]
    )
    return uvicorn, limits


def _served_app(
    model: Path,
    preprocessing: dict[str, Any],
    api_key_env: str | None,
    limits: Any,
    fault_rate: float,
    latency: float,
    v2_name: str | None,
) -> Any:
    """The label-only app around the model file, opened as ``audit --model`` opens it, behind the API key."""
    import os

    from labelleak.pipeline.setup import target_from_options
    from labelleak.serve import FaultConfig, create_app

    key = os.environ.get(api_key_env) if api_key_env else None
    if api_key_env and not key:
        raise LabelleakError(f"environment variable {api_key_env} is not set")
    oracle = target_from_options(model=str(model), **preprocessing)
    return create_app(
        oracle.predict_labels,
        input_shape=oracle.input_shape,
        n_classes=oracle.n_classes,
        bounds=oracle.bounds,
        api_key=key,
        limits=limits,
        faults=FaultConfig(rate=fault_rate, latency=latency) if fault_rate > 0 or latency > 0 else None,
        v2_name=v2_name,
    )


def _parse_sets(items: list[str]) -> dict:
    """``key=value`` pairs; values are read as YAML (``epochs=2``, ``train_size=[50,100]``, ``data=x.npz``)."""
    import yaml

    found = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise LabelleakError(f"--set: expected KEY=VALUE, got {item!r}")
        try:
            found[key.strip().replace("-", "_")] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise LabelleakError(f"--set {key}: cannot read the value {value!r}") from None
    return found


@app.command()
def reproduce(
    experiment: str = typer.Argument(
        ...,
        help="sizes, queries, norms, threshold, distances, transfer-ablation, defenses, lowfpr, or a YAML plan file.",
    ),
    scale: str = typer.Option("cpu", help="cpu (hours on 2 cores) or paper (the paper's settings; use a GPU)."),
    dataset: str | None = typer.Option(None, help="Dataset in place of the plan's (cifar10)."),
    data: str | None = typer.Option(None, help="Path of the dataset (CIFAR-10 is looked for in ../shared/data)."),
    out: str | None = typer.Option(None, help="Output folder (default reproduce-out/EXPERIMENT-SCALE)."),
    seed: int | None = typer.Option(None, help="Seed of every run."),
    set_: list[str] = typer.Option(
        [],
        "--set",
        help="Override an audit key in every run, e.g. --set epochs=5; "
        "a grid axis is replaced, e.g. --set train_size=[100,500].",
    ),
    cache_dir: str | None = typer.Option(None, help="Model cache."),
    resume: bool = typer.Option(False, "--resume", help="Skip finished audits and continue an interrupted one."),
    fresh: bool = typer.Option(False, "--fresh", help="Start an unfinished audit over, deleting its answers."),
    repeats: int = typer.Option(
        1, help="Run the experiment under N seeds (OUT/seed-<s>/) and pool every run over them (OUT/pooled.md)."
    ),
    backend: str | None = typer.Option(None, help="local (default) or ray: candidate shards on Ray workers."),
    ray_address: str | None = typer.Option(None, help="Ray cluster: auto or ray://HOST:PORT (default: local Ray)."),
    workers: int | None = typer.Option(None, help="Ray workers (one candidate shard each)."),
    worker_cpus: float | None = typer.Option(None, help="CPUs per Ray worker (default 1)."),
    worker_gpus: float | None = typer.Option(None, help="GPUs per Ray worker (default 0)."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars, only warnings and errors on stderr."),
) -> None:
    """Reproduce an experiment of Li & Zhang (CCS 2021): run its audits, write summary.{json,md}, CSV and PNG."""
    _apply_quiet(quiet)
    from rich.markdown import Markdown

    from labelleak.pipeline.checkpoint import Interrupted
    from labelleak.pipeline.reproduce import run_reproduce

    try:
        overrides = _parse_sets(set_)
        overrides.update(
            {
                k: v
                for k, v in {
                    "dataset": dataset,
                    "data": data,
                    "seed": seed,
                    "cache_dir": cache_dir,
                    "backend": backend,
                    "ray_address": ray_address,
                    "workers": workers,
                    "worker_cpus": worker_cpus,
                    "worker_gpus": worker_gpus,
                    "fresh": True if fresh else None,
                }.items()
                if v is not None
            }
        )
        if repeats != 1:
            from labelleak.pipeline.repeats import run_reproduce_repeats

            pooled = run_reproduce_repeats(
                experiment, repeats=repeats, scale=scale, out=out, overrides=overrides, resume=resume,
                progress=not quiet,
            )  # fmt: skip
        else:
            summary = run_reproduce(
                experiment, scale=scale, out=out, overrides=overrides, resume=resume, progress=not quiet
            )
    except Interrupted as exc:
        _err.print(f"interrupted; progress is saved (last in {exc.folder}): rerun the same command with --resume")
        raise typer.Exit(code=130) from None
    except LabelleakError as exc:
        _fail(exc)
        return
    if repeats != 1:
        folder = Path(out) if out else Path("reproduce-out") / f"{pooled['experiment']}-{scale}"
        Console(width=180).print(Markdown((folder / "pooled.md").read_text()))
        Console().print(
            f"pooled over seeds {', '.join(map(str, pooled['seeds']))}: {folder}/pooled.md (each seed's "
            f"reproduction in {folder}/seed-<s>/) in {pooled['seconds']:.0f} s"
        )
        return
    folder = Path(out) if out else Path("reproduce-out") / f"{summary['experiment']}-{scale}"
    Console(width=180).print(Markdown((folder / "summary.md").read_text()))
    Console().print(
        f"summary written to {folder}/ (summary.json, summary.md, CSV tables, PNG figures) "
        f"in {summary['seconds']:.0f} s"
    )


split_app = typer.Typer(help="The candidates of a split labelleak makes, as files.", no_args_is_help=True)
app.add_typer(split_app, name="split")


@split_app.command("export")
def split_export(
    out: Path = typer.Option(..., help="Folder for members.npz, nonmembers.npz, shadow.npz and split.json."),
    config: Path | None = typer.Option(None, "--config", help="YAML file with audit options (dataset, sizes, ...)."),
    dataset: str | None = typer.Option(None, help="digits (default), cifar10, cifar100, npz, folder, tabular."),
    data: str | None = typer.Option(None, help="Path of the dataset file or folder."),
    arch: str | None = typer.Option(None, help="mlp, cnn2..cnn11, or auto (default)."),
    epochs: int | None = typer.Option(None, help="Training epochs of the target."),
    train_size: int | None = typer.Option(None, help="Target training-set size (members)."),
    eval_size: int | None = typer.Option(None, help="Member and non-member candidates each."),
    shadow_size: int | None = typer.Option(None, help="Size of shadow-train and of shadow-test."),
    seed: int | None = typer.Option(None, help="Seed of the split and the training."),
    cache_dir: str | None = typer.Option(None, help="Model cache (default .labelleak-cache)."),
) -> None:
    """Write a split's members, non-members and shadow data in the format `audit --members` reads, and train (or
    load) its target, so that `labelleak serve` can serve it and a remote audit can be run on its candidates."""
    from labelleak.pipeline.config import make_config
    from labelleak.pipeline.split_export import export_split

    try:
        cfg = make_config(
            config,
            dataset=dataset,
            data=data,
            arch=arch,
            epochs=epochs,
            train_size=train_size,
            eval_size=eval_size,
            shadow_size=shadow_size,
            seed=seed,
            cache_dir=cache_dir,
            progress=False,
        )
        about = export_split(cfg, out)
    except LabelleakError as exc:
        _fail(exc)
        return
    Console().print(f"wrote {', '.join(Path(p).name for p in about['files'].values())} and split.json to {out}/")
    Console().print(f"serve the target:  {about['serve']}", highlight=False, soft_wrap=True)
    Console().print(f"audit it remotely: {about['audit']}", highlight=False, soft_wrap=True)


@app.command()
def report(
    folder: Path = typer.Argument(..., help="Output folder of an audit, defend or reproduce run."),
    screenshot: Path | None = typer.Option(
        None, help="Also save a PNG of the top of the page (needs chromium and the 'test' extra's playwright)."
    ),
) -> None:
    """Rebuild FOLDER/report.html, the self-contained HTML report, from the files of an earlier run (and a
    reproduce run's summary.md and CSVs from its summary.json)."""
    try:
        from labelleak._extras import require

        require("jinja2", "report", "labelleak report")
        require("matplotlib", "report", "labelleak report")
        from labelleak.report.html import write_report
        from labelleak.report.outputs import rewrite_summary_tables

        rewrite_summary_tables(folder)  # a reproduce run's summary.md and CSVs, under today's printing rules
        path = write_report(folder)
        if screenshot is not None:
            from labelleak.report.screenshot import save_screenshot

            save_screenshot(path, screenshot)
    except LabelleakError as exc:
        _fail(exc)
        return
    Console().print(f"report written to {path}" + (f"; screenshot {screenshot}" if screenshot else ""))


@app.command("attacks")
def list_attacks() -> None:
    """List the registered attack names."""
    from labelleak.attacks import attack_names

    for name in attack_names():
        typer.echo(name)


def run() -> None:  # console-script entry point
    """``app()`` with the failures of the machine, not of labelleak, as one line each: out of memory, a full disk."""
    import errno

    try:
        app()  # click handles usage errors and Ctrl-C itself; what it lets through is handled here
    except MemoryError:
        _err.print(
            "error: out of memory; use a smaller model (--width), batch or input shape", highlight=False, soft_wrap=True
        )
        sys.exit(2)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        _err.print(
            f"error: the disk is full{where}; finished attacks are kept in OUT/checkpoint: free space and rerun "
            "with --resume",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(2)


if __name__ == "__main__":
    sys.exit(app())
