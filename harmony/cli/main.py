"""`harmony`: the root typer app. Command groups live in sibling modules and import heavy
libraries (torch, faiss, duckdb) inside their commands so `harmony --help` stays fast."""

from __future__ import annotations

import typer

from harmony.cli import data as data_cli
from harmony.cli.cluster import cluster_command
from harmony.cli import gallery as gallery_cli
from harmony.cli import migrate as migrate_cli
from harmony.cli.demo import demo_command
from harmony.cli import eval as eval_cli
from harmony.cli.models import models_command
from harmony.cli import registry as registry_cli
from harmony.cli.serve import serve_command
from harmony.cli import train as train_cli

app = typer.Typer(
    name="harmony",
    help="Versioned face embeddings: train FaceNet models, learn compatible (harmonic) upgrades, "
    "and migrate FAISS galleries between versions.\n\nExample: harmony train base --recipe recipes/base-tiny.yaml --name v1",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
app.add_typer(train_cli.app, name="train")
app.add_typer(data_cli.app, name="data")
app.add_typer(registry_cli.app, name="registry")
app.add_typer(eval_cli.app, name="eval")
app.add_typer(gallery_cli.app, name="gallery")
app.add_typer(migrate_cli.app, name="migrate")
app.command("demo")(demo_command)
# -- command groups added by later issues (one line each) --
app.command("cluster")(cluster_command)
app.command("serve")(serve_command)
app.command("models")(models_command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
