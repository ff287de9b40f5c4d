"""Item 6: one name rule everywhere (at most 64 characters); a malicious or corrupt checkpoint is
refused with one line that never suggests weights_only=False."""

from __future__ import annotations

import pickle

import pytest
import torch

from harmony.errors import IntegrityError, InvalidInput
from harmony.models.loading import load_torch_checkpoint


class Boom:
    def __reduce__(self):
        return (print, ("pwned",))


def test_names_longer_than_64_are_refused_everywhere(reg, add):
    add("v1")
    long = "a" * 300
    with pytest.raises(InvalidInput, match="at most 64"):
        add(long)
    with pytest.raises(InvalidInput, match="at most 64"):
        reg.set_alias(long, "v1")
    assert add("b" * 64).name == "b" * 64


def test_malicious_and_corrupt_checkpoints(tmp_path, capsys):
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "x": Boom()}, evil)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    raw_pickle = tmp_path / "pickle.pt"
    raw_pickle.write_bytes(pickle.dumps(Boom()))
    for path in (evil, corrupt, raw_pickle):
        with pytest.raises(IntegrityError) as err:
            load_torch_checkpoint(path)
        assert "weights_only" not in str(err.value) and "\n" not in str(err.value)
    assert "pwned" not in capsys.readouterr().out


def test_read_only_or_full_registry_is_refused_up_front(reg, make_ckpt, monkeypatch):
    import errno
    import shutil
    import tempfile
    from collections import namedtuple

    from harmony.errors import DiskFull

    def erofs(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    with monkeypatch.context() as m:
        m.setattr(tempfile, "mkstemp", erofs)
        with pytest.raises(InvalidInput, match="not writable"):
            reg.add_version("v1", kind="base", artifact=make_ckpt(0), backbone="b", dim=8)
    Usage = namedtuple("Usage", "total used free")
    with monkeypatch.context() as m:
        m.setattr(shutil, "disk_usage", lambda p: Usage(10, 10, 1024))
        with pytest.raises(DiskFull, match="MiB free"):
            reg.add_version("v1", kind="base", artifact=make_ckpt(0), backbone="b", dim=8)
    assert reg.list_versions() == [] and not (reg.root / "artifacts" / "v1").exists()


def test_add_external_refuses_nan_mean_and_absurd_sizes(reg, tmp_path):
    from typer.testing import CliRunner

    from harmony.cli.registry import app

    class Mean(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(2, 3))

    path = tmp_path / "m.ts"
    torch.jit.script(Mean()).save(str(path))
    runner = CliRunner()
    for extra, says in ((["--mean", "nan,0,0", "--image-size", "32"], "finite"),
                        (["--image-size", "100000"], "outside 8..1024"),
                        (["--std", "0.5,inf,0.5", "--image-size", "32"], "finite")):
        r = runner.invoke(app, ["add-external", "legacy", "--adapter", "torchscript", "--file", str(path), *extra,
                                "--registry", str(reg.root)])
        assert r.exit_code == 2 and says in r.output and "Traceback" not in r.output, r.output
    assert reg.list_versions() == [] and not (reg.root / "artifacts" / "legacy").exists()


def test_read_only_registry_fails_before_embedding_or_training(env, tmp_path, monkeypatch):
    import errno
    import tempfile

    from typer.testing import CliRunner

    import harmony.models.pipeline as pipeline
    from harmony.cli.gallery import app as gallery_app
    from harmony.cli.train import app as train_app
    from tests.conftest import write_recipe
    calls = []
    monkeypatch.setattr(pipeline.FileEmbedder, "embed", lambda *a, **k: calls.append(1))

    def erofs(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", erofs)
    runner = CliRunner()
    r = runner.invoke(gallery_app, ["build", "--name", "g2", "--version", "v1", "--data", str(env.faces),
                                    "--registry", str(env.root)])
    assert r.exit_code == 2 and "not writable" in r.output and calls == [], r.output
    r = runner.invoke(train_app, ["base", "--recipe", str(write_recipe(tmp_path / "r.yaml")), "--name", "v9",
                                  "--registry", str(env.root)])
    assert r.exit_code == 2 and "not writable" in r.output, r.output


def test_disk_full_mid_write_is_one_line_and_leaves_nothing(reg, add, tmp_path, monkeypatch):
    import errno

    import duckdb
    from typer.testing import CliRunner

    import harmony.registry.artifacts as artifacts
    from harmony.cli.registry import app
    from harmony.registry.store import Registry

    add("v1")
    runner = CliRunner()

    def full_db(self, *a, **k):
        raise duckdb.TransactionException("TransactionContext Error: Failed to commit: No space left on device")

    with monkeypatch.context() as m:
        m.setattr(Registry, "set_alias", full_db)
        r = runner.invoke(app, ["alias", "set", "prod", "v1", "--registry", str(reg.root)])
    assert r.exit_code == 2 and "disk" in r.output.lower() and "Traceback" not in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1

    class Mean(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(2, 3))

    path = tmp_path / "m.ts"
    torch.jit.script(Mean()).save(str(path))
    def enospc(src, folder):  # the disk fills during the copy (stage_copy removes its own temp file)
        folder.mkdir(parents=True, exist_ok=True)
        raise OSError(errno.ENOSPC, "No space left on device", str(folder / ".tmp-x"))

    with monkeypatch.context() as m:
        m.setattr(artifacts, "stage_copy", enospc)
        r = runner.invoke(app, ["add-external", "legacy", "--adapter", "torchscript", "--file", str(path),
                                "--image-size", "32", "--registry", str(reg.root)])
    assert r.exit_code == 2 and "disk full" in r.output and "Traceback" not in r.output, r.output
    assert [v.name for v in reg.list_versions()] == ["v1"]
    assert not (reg.root / "artifacts" / "legacy").exists()
