"""The paper's phone model from the CLI: a MobileFaceNet v2 trained harmonic against a small-CNN
server v1, and the multiply-add ratio the report gives, against the networks' measured cost."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from harmony.cli.main import app
from tests.conftest import write_recipe

MOBILE = {"backbone": "mobilefacenet", "backbone_args": {"input_size": 32, "width": 0.25}, "dim": 16}


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_phone_v2_from_a_server_v1_reports_the_cost_ratio(tmp_path, micro_recipe, registry_root):
    from harmony.models.complexity import embedder_cost
    from harmony.models.embedder import EmbedderSpec
    from harmony.registry import Registry

    phone = write_recipe(tmp_path / "phone.yaml", model=MOBILE)
    for name, rec in [("server", micro_recipe), ("phone-base", phone)]:
        r = invoke("train", "base", "--recipe", rec, "--name", name, "--quiet", "--registry", registry_root)
        assert r.exit_code == 0, r.output
    r = invoke("train", "harmonic", "--from", "server", "--init", "phone-base", "--recipe", phone,
               "--name", "phone", "--quiet", "--registry", registry_root)
    assert r.exit_code == 0, r.output
    reg = Registry.open(registry_root)
    cost = {n: reg.get_version(n).meta["cost"] for n in ("server", "phone")}
    for n, c in cost.items():  # recorded at registration, measured on the registered network
        assert c == embedder_cost(EmbedderSpec.from_dict(reg.get_version(n).meta["spec"]))
    assert reg.get_version("phone").meta["spec"]["backbone"] == "mobilefacenet"
    text = " ".join(r.output.split())
    m = re.search(r"multiply-add ratio phone/server (\d+\.\d+)", text)
    assert m, text
    assert float(m.group(1)) == round(cost["phone"]["mult_adds"] / cost["server"]["mult_adds"], 2)
    assert "VAL" in text and "gain" in text  # the 2x2 table with the share of the gain recovered
