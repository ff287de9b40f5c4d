"""`harmony models`: every registered backbone with its measured parameters and multiply-adds next
to the paper's figures (``harmony.models.complexity``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harmony.cli.common import JsonOpt, console, echo_json, handle_errors, table

if TYPE_CHECKING:
    from harmony.models.complexity import Complexity


def _count(n: float | None, measured: bool = True) -> str:
    """3 significant digits for a measured count (1.00M), the paper's own precision for its figures (1.6B)."""
    if n is None:
        return "-"
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            x = n / div
            return (f"{x:.0f}" if x >= 100 else f"{x:#.3g}" if measured else f"{x:g}") + unit
    return f"{n:.0f}"


def _ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.3f}"


def models_table(rows: list[Complexity]):
    """One row per backbone; the paper's figures and measured / paper as "params / FLOPS" pairs."""
    t = table("backbones, measured (backbone + 128-D head)",
              ["backbone", "input", "params", "mult-adds", "paper", "measured/paper", "source"],
              right={"params", "mult-adds", "paper", "measured/paper"},
              no_wrap={"backbone", "input", "params", "mult-adds", "paper", "measured/paper"})
    for r in rows:
        paper = "-" if r.paper_params is None and r.paper_mult_adds is None else \
            f"{_count(r.paper_params, False)} / {_count(r.paper_mult_adds, False)}"
        ratio = "-" if paper == "-" else f"{_ratio(r.params_ratio)} / {_ratio(r.mult_adds_ratio)}"
        t.add_row(r.backbone, f"{r.input_size[0]}x{r.input_size[1]}", _count(r.params), _count(r.mult_adds), paper,
                  ratio, "; ".join(x for x in (r.source, r.note) if x))
    t.caption = ("paper and measured/paper: params / FLOPS; the papers' FLOPS are multiply-adds (FaceNet Table 1: "
                 "conv1's 115M = 7*7*3*64*110*110), measured = torch's FlopCounterMode FLOPs / 2")
    return t


@handle_errors
def models_command(json_out: JsonOpt = False) -> None:
    """List every backbone a recipe can name, with input size, parameters and multiply-adds measured
    on the built network (torch's flop counter, meta device) next to the paper's figures.

    Example: harmony models --json
    """
    from harmony.models.complexity import zoo

    if json_out:
        echo_json([r.as_dict() for r in zoo()])
        return
    with console.status("building every backbone on the meta device and counting ..."):
        rows = zoo()
    console.print(models_table(rows))
