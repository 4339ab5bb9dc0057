"""Command line: parse options, call the pipeline, turn labelleak errors into one clear line and exit code 2."""

from __future__ import annotations

import sys
from pathlib import Path

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
        from labelleak import __version__

        Console().print(f"labelleak {__version__}", highlight=False)
        raise typer.Exit()


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


@app.command()
def audit(
    config: Path | None = typer.Option(None, "--config", help="YAML file with the same keys as these options."),
    dataset: str | None = typer.Option(None, help="digits (default), cifar10, cifar100, npz, folder, tabular."),
    data: str | None = typer.Option(None, help="Path of the dataset file or folder."),
    arch: str | None = typer.Option(None, help="mlp, cnn3..cnn11, or auto (default)."),
    width: float | None = typer.Option(None, help="Channel/width multiplier of the architecture."),
    epochs: int | None = typer.Option(None, help="Training epochs of target and shadow models."),
    train_size: int | None = typer.Option(None, help="Target training-set size (members)."),
    eval_size: int | None = typer.Option(None, help="Member and non-member candidates each."),
    shadow_size: int | None = typer.Option(None, help="Size of shadow-train and of shadow-test."),
    attacks: str | None = typer.Option(None, help="Comma-separated attack names (see `labelleak attacks`)."),
    queries: int | None = typer.Option(None, help="Per-candidate query budget (default 2000)."),
    max_iter: int | None = typer.Option(None, help="HopSkipJump/QEBA iterations (default 50)."),
    max_eval: int | None = typer.Option(None, help="HopSkipJump/QEBA max gradient samples (default 10000)."),
    top_t: float | None = typer.Option(None, help="Data-free threshold percentile of noise distances (50)."),
    noise_samples: int | None = typer.Option(None, help="Random-noise inputs for the data-free threshold."),
    seed: int | None = typer.Option(None, help="Seed of the split, training and attacks."),
    out: str | None = typer.Option(None, help="Output folder (default audit-out)."),
    cache_dir: str | None = typer.Option(None, help="Where trained models are cached."),
    target: str | None = typer.Option(None, help="URL of a remote label-only target (see `labelleak serve`)."),
    members: str | None = typer.Option(None, help="Remote audits: member candidates (.npz with x, y)."),
    nonmembers: str | None = typer.Option(None, help="Remote audits: non-member candidates (.npz with x, y)."),
    shadow: str | None = typer.Option(None, help="Remote audits: the adversary's shadow pool (.npz with x, y)."),
    api_key_env: str | None = typer.Option(None, help="Environment variable holding the remote API key."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run saved in OUT/checkpoint."),
    no_checkpoint: bool = typer.Option(False, "--no-checkpoint", help="Do not journal queries and results."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars, only warnings and errors on stderr."),
) -> None:
    """Train (or load) a target and a shadow model, run the attacks and write results.json, scores.csv, roc.png."""
    _apply_quiet(quiet)
    from labelleak.pipeline import make_config, run_audit
    from labelleak.pipeline.checkpoint import Interrupted
    from labelleak.report import print_audit_table

    try:
        cfg = make_config(
            config,
            dataset=dataset,
            data=data,
            arch=arch,
            width=width,
            epochs=epochs,
            train_size=train_size,
            eval_size=eval_size,
            shadow_size=shadow_size,
            attacks=attacks,
            queries=queries,
            max_iter=max_iter,
            max_eval=max_eval,
            top_t=top_t,
            noise_samples=noise_samples,
            seed=seed,
            out=out,
            cache_dir=cache_dir,
            target=target,
            members=members,
            nonmembers=nonmembers,
            shadow=shadow,
            api_key_env=api_key_env,
            resume=True if resume else None,
            checkpoint=False if no_checkpoint else None,
            progress=False if quiet else None,
        )
        results = run_audit(cfg)
    except LabelleakError as exc:
        _fail(exc)
        return
    except Interrupted as stop:
        _err.print(f"interrupted: progress saved in {stop.folder}; run the same command with --resume to continue")
        raise typer.Exit(code=130) from None
    print_audit_table(results)
    Console().print(f"results written to {cfg.out}/")


@app.command()
def defend(
    defenses: str | None = typer.Option(
        None,
        help="Comma-separated defenses; combine with '+', e.g. l2=5e-4+augment (default "
        "none,l2=5e-4,dropout=0.5,dp=8,memguard=1). With --sweep: the families to sweep (default all).",
    ),
    sweep: bool = typer.Option(False, "--sweep", help="Train each defense family at a grid of strengths."),
    grid: list[str] = typer.Option([], "--grid", help="Sweep strengths of one family, e.g. --grid l2=[1e-4,1e-3]."),
    target_tpr: float = typer.Option(0.01, help="Recommend the cheapest defense with label-only TPR@1%FPR below."),
    target_auc: float | None = typer.Option(None, help="... and, when given, label-only AUC below this."),
    config: Path | None = typer.Option(None, "--config", help="YAML file with audit keys."),
    dataset: str | None = typer.Option(None, help="Dataset (default digits)."),
    data: str | None = typer.Option(None, help="Path of the dataset."),
    arch: str | None = typer.Option(None, help="Target architecture."),
    width: float | None = typer.Option(None, help="Width multiplier."),
    epochs: int | None = typer.Option(None, help="Training epochs."),
    train_size: int | None = typer.Option(None, help="Target training-set size."),
    eval_size: int | None = typer.Option(None, help="Member and non-member candidates each."),
    attacks: str | None = typer.Option("gap,transfer,boundary-hsja,score-loss", help="Attacks to run."),
    queries: int | None = typer.Option(None, help="Per-candidate query budget."),
    seed: int | None = typer.Option(None, help="Seed."),
    out: str = typer.Option("defend-out", help="Output folder."),
    cache_dir: str | None = typer.Option(None, help="Model cache."),
    resume: bool = typer.Option(False, "--resume", help="Skip finished defenses and continue an interrupted one."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars, only warnings and errors on stderr."),
) -> None:
    """Train the target under each defense, attack it, and write the defense matrix (JSON, CSV, Markdown, PNG)
    with the cheapest defense that brings the label-only attacks below --target-tpr."""
    _apply_quiet(quiet)
    from rich.markdown import Markdown

    from labelleak.pipeline import make_config
    from labelleak.pipeline.checkpoint import Interrupted
    from labelleak.pipeline.defend import _markdown, run_defend
    from labelleak.pipeline.recommend import recommend
    from labelleak.pipeline.sweep import sweep_defenses

    try:
        names = [d.strip() for d in defenses.split(",") if d.strip()] if defenses is not None else None
        if sweep:
            chosen = sweep_defenses(names, grid)
        elif grid:
            raise LabelleakError("--grid needs --sweep")
        else:
            chosen = names or ["none", "l2=5e-4", "dropout=0.5", "dp=8", "memguard=1"]
        cfg = make_config(
            config,
            dataset=dataset,
            data=data,
            arch=arch,
            width=width,
            epochs=epochs,
            train_size=train_size,
            eval_size=eval_size,
            attacks=attacks,
            queries=queries,
            seed=seed,
            out=out,
            cache_dir=cache_dir,
            resume=True if resume else None,
            progress=False if quiet else None,
        )
        rows = run_defend(cfg, chosen, target_tpr=target_tpr, target_auc=target_auc)
    except LabelleakError as exc:
        _fail(exc)
        return
    except Interrupted as stop:
        _err.print(f"interrupted: progress saved in {stop.folder}; run the same command with --resume to continue")
        raise typer.Exit(code=130) from None
    Console(width=160).print(Markdown(_markdown(rows, list(cfg.attacks))))
    Console().print(recommend(rows, list(cfg.attacks), target_tpr=target_tpr, target_auc=target_auc).statement())
    Console().print(f"matrix written to {out}/ (matrix.json, matrix.csv, matrix.md, privacy_utility.png, pareto.png)")


@app.command()
def serve(
    model: Path = typer.Option(..., help="Folder with model.safetensors and config.json (from an audit's cache)."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="TCP port."),
    api_key_env: str | None = typer.Option(None, help="Require the API key held in this environment variable."),
    max_batch: int = typer.Option(4096, help="Largest batch one request may carry."),
    rate_limit: float | None = typer.Option(None, help="Requests per second per API key."),
    fault_rate: float = typer.Option(0.0, help="Testing: fraction of predictions answered 500/429 or delayed."),
) -> None:
    """Serve a trained model as a label-only HTTP API (POST /predict answers labels, nothing else)."""
    import os

    try:
        from labelleak._extras import require

        uvicorn = require("uvicorn", "serve", "labelleak serve")
        from labelleak.serve import FaultConfig, ServeLimits, create_app
    except LabelleakError as exc:
        _fail(exc)
        return
    from labelleak.models import load_model

    try:
        net, spec, _ = load_model(model)
        key = os.environ.get(api_key_env) if api_key_env else None
        if api_key_env and not key:
            raise LabelleakError(f"environment variable {api_key_env} is not set")
        app_ = create_app(
            net,
            input_shape=spec.input_shape,
            n_classes=spec.n_classes,
            api_key=key,
            limits=ServeLimits(max_batch=max_batch, rate_limit=rate_limit),
            faults=FaultConfig(rate=fault_rate) if fault_rate > 0 else None,
        )
    except LabelleakError as exc:
        _fail(exc)
        return
    uvicorn.run(app_, host=host, port=port, log_level="warning")


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
        ..., help="sizes, queries, norms, threshold, distances, transfer-ablation, defenses, or a YAML plan file."
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
                for k, v in {"dataset": dataset, "data": data, "seed": seed, "cache_dir": cache_dir}.items()
                if v is not None
            }
        )
        summary = run_reproduce(
            experiment, scale=scale, out=out, overrides=overrides, resume=resume, progress=not quiet
        )
    except Interrupted as exc:
        _err.print(f"interrupted; progress is saved (last in {exc.folder}): rerun the same command with --resume")
        raise typer.Exit(code=130) from None
    except LabelleakError as exc:
        _fail(exc)
        return
    folder = Path(out) if out else Path("reproduce-out") / f"{summary['experiment']}-{scale}"
    Console(width=180).print(Markdown((folder / "summary.md").read_text()))
    Console().print(
        f"summary written to {folder}/ (summary.json, summary.md, CSV tables, PNG figures) "
        f"in {summary['seconds']:.0f} s"
    )


@app.command("attacks")
def list_attacks() -> None:
    """List the registered attack names."""
    from labelleak.attacks import attack_names

    for name in attack_names():
        typer.echo(name)


def run() -> None:  # console-script entry point
    app()


if __name__ == "__main__":
    sys.exit(app())
