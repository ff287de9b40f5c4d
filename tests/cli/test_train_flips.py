"""`harmony train harmonic`: gain recovered, top-1 verdict and negative flips on the held-out split,
and --max-flip-rate, which refuses to register (run folder kept, the re-run resumes it)."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from harmony.cli.main import app
from harmony.registry import Registry

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_max_flip_rate_refuses_then_a_rerun_registers_without_training(micro_recipe, registry_root, monkeypatch):
    from harmony.cli.common import console

    monkeypatch.setattr(console, "width", 250)
    r = invoke("train", "base", "--recipe", micro_recipe, "--name", "v1", "--quiet", "--registry", registry_root)
    assert r.exit_code == 0, r.output
    harmonic = ("train", "harmonic", "--from", "v1", "--recipe", micro_recipe, "--name", "v2", "--quiet",
                "--registry", registry_root)

    r = invoke(*harmonic, "--max-flip-rate", "1.5")
    assert r.exit_code == 2 and "--max-flip-rate must be a number in [0, 1], got 1.5" in " ".join(r.output.split())
    assert not (registry_root / "runs" / "v2").exists()  # refused before any training

    # a fresh network after 4 steps cannot keep every query v1 gets right: R = 0 must bite
    r = invoke(*harmonic, "--max-flip-rate", "0")
    err = " ".join(r.stderr.split())
    assert r.exit_code == 2 and "negative flip rate" in err and "exceeds --max-flip-rate 0" in err, r.output
    assert "v2 was not registered" in err and "resumes without training again" in err
    reg = Registry.open(registry_root)
    assert [v.name for v in reg.list_versions()] == ["v1"]
    run = registry_root / "runs" / "v2"
    assert (run / "FAILED").is_file() and list(run.glob("*/last.ckpt"))  # nothing lost
    rate = float(re.search(r"negative flip rate ([0-9.]+)%", err).group(1)) / 100

    r = invoke(*harmonic, "--max-flip-rate", "1")
    assert r.exit_code == 0, r.output
    assert "resuming the unfinished run" in r.output
    text = " ".join(r.stdout.split())
    for words in ("gain recovered", "top-1 identification v2->v1", "negative flips", "v2 -> v1 (old gallery: mixed "
                  "search)", "every id in `harmony registry show v2 --json`"):
        assert words in text, words
    ev = [e for e in reg.evaluations("v2") if e["against"] == "v1"][-1]["metrics"]
    flips = ev["flips"]
    measured = [flips[k]["rate"] for k in ("new_flips", "cross_flips") if flips[k]["rate"] > 0]
    assert round(measured[0], 4) == round(rate, 4)  # the resumed weights are the refused ones
    assert ev["identification"]["rows"][2]["probe"] == "v2" and len(flips["cross_flips"]["ids"]) == \
        flips["cross_flips"]["n_flips"]
    assert all("gain_recovered" in row for row in ev["rows"])
