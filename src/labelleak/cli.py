"""Command line: parse options, call the pipeline, turn labelleak errors into one clear line and exit code 2."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from labelleak.errors import LabelleakError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Measure how much a model leaks about its training data through its predicted labels.")
_err = Console(stderr=True)


def _fail(exc: Exception) -> None:
    _err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)


@app.callback()
def main() -> None:
    """labelleak: label-only membership-inference audits."""


@app.command()
def audit(
    config: Optional[Path] = typer.Option(None, "--config", help="YAML file with the same keys as these options."),
    dataset: Optional[str] = typer.Option(None, help="digits (default), cifar10, cifar100, npz, folder, tabular."),
    data: Optional[str] = typer.Option(None, help="Path of the dataset file or folder."),
    arch: Optional[str] = typer.Option(None, help="mlp, cnn3..cnn11, or auto (default)."),
    width: Optional[float] = typer.Option(None, help="Channel/width multiplier of the architecture."),
    epochs: Optional[int] = typer.Option(None, help="Training epochs of target and shadow models."),
    train_size: Optional[int] = typer.Option(None, help="Target training-set size (members)."),
    eval_size: Optional[int] = typer.Option(None, help="Member and non-member candidates each."),
    shadow_size: Optional[int] = typer.Option(None, help="Size of shadow-train and of shadow-test."),
    attacks: Optional[str] = typer.Option(None, help="Comma-separated attack names (see `labelleak attacks`)."),
    queries: Optional[int] = typer.Option(None, help="Per-candidate query budget (default 2000)."),
    max_iter: Optional[int] = typer.Option(None, help="HopSkipJump/QEBA iterations (default 50)."),
    max_eval: Optional[int] = typer.Option(None, help="HopSkipJump/QEBA max gradient samples (default 10000)."),
    top_t: Optional[float] = typer.Option(None, help="Data-free threshold percentile of noise distances (50)."),
    noise_samples: Optional[int] = typer.Option(None, help="Random-noise inputs for the data-free threshold."),
    seed: Optional[int] = typer.Option(None, help="Seed of the split, training and attacks."),
    out: Optional[str] = typer.Option(None, help="Output folder (default audit-out)."),
    cache_dir: Optional[str] = typer.Option(None, help="Where trained models are cached."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
) -> None:
    """Train (or load) a target and a shadow model, run the attacks and write results.json, scores.csv, roc.png."""
    from labelleak.pipeline import make_config, run_audit
    from labelleak.report import print_audit_table

    try:
        cfg = make_config(config, dataset=dataset, data=data, arch=arch, width=width, epochs=epochs,
                          train_size=train_size, eval_size=eval_size, shadow_size=shadow_size, attacks=attacks,
                          queries=queries, max_iter=max_iter, max_eval=max_eval, top_t=top_t,
                          noise_samples=noise_samples, seed=seed, out=out, cache_dir=cache_dir,
                          progress=False if quiet else None)
        results = run_audit(cfg)
    except LabelleakError as exc:
        _fail(exc)
        return
    print_audit_table(results)
    Console().print(f"results written to {cfg.out}/")


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
