"""Build hook: the wheel carries the shipped models.

The models live in `models/` at the repository root (the project's layout). A built wheel (and so
`pip install .`, `pip install <wheel>`, `pipx install <path or git URL>`) gets a copy of each shipped
model folder as `promptzip/_models/<name>`: the files its manifest lists, the manifest and the model
card. An editable install copies nothing: it finds `models/` in the checkout
(`promptzip/runtime/shipped.py` looks in both places). Everything else is in pyproject.toml.
"""

import json
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

MODELS = Path(__file__).resolve().parent / "models"
SHIPPED = ("extract-minilm", "extract-multilingual", "embed-minilm", "latent-smollm2")


class BuildWithModels(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        for name in SHIPPED:
            src = MODELS / name
            manifest = src / "manifest.json"
            if not manifest.is_file():
                raise SystemExit(f"setup.py: {manifest} is missing; the wheel must carry the {name} model")
            dest = Path(self.build_lib) / "promptzip" / "_models" / name
            dest.mkdir(parents=True, exist_ok=True)
            listed = list(json.loads(manifest.read_text(encoding="utf-8"))["files"])
            for rel in [*listed, "manifest.json", "MODEL_CARD.md"]:
                if (src / rel).is_file():
                    (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src / rel, dest / rel)
                elif rel in listed:
                    raise SystemExit(f"setup.py: {src / rel} is listed in its manifest but missing")


setup(cmdclass={"build_py": BuildWithModels})
