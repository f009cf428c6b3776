"""`promptzip decode` and `promptzip ask`: read a latent file written by `compress -m latent`;
and the `-m latent` branch of `compress` (binary output, so never to a terminal)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import UsageError
from .common import err, handle_errors, progress_bar


def compress_latent(path: str | None, output: Path | None, params: dict[str, str], quiet: bool,
                    report_file: Path | None, errors: str) -> None:
    from ..compressors.latent import Latent
    from ..latent import codec
    from ..latent.runtime import runtime
    from ..source import open_document

    if output is None and sys.stdout.isatty():
        raise UsageError("-m latent writes binary (.safetensors); it will not go to a terminal",
                         "Give -o FILE.safetensors.")
    settings = Latent(**params).settings
    rate, refine = settings["rate"], settings["refine"]
    if refine < 0:
        raise UsageError(f"-p refine must be 0 or more, got {refine}")
    with open_document(path, errors) as doc:
        text = doc.read_text()  # decoded (strict, or with U+FFFD) when it was opened
    rt = runtime()
    with progress_bar(not quiet and refine > 0, "latent: refining (chunk-steps)") as update:
        latents, header = rt.encode(text, rate, refine, settings["init"], update)
    if output is not None:
        codec.write(output, latents, header)
    else:  # a pipe or a file: binary is fine there
        sys.stdout.buffer.write(codec.dumps(latents, header))
        sys.stdout.buffer.flush()
    summary = {"method": "latent", "rate": rate, "original_tokens": int(header["original_tokens"]),
               "latents": sum(len(x) for x in latents), "chunks": len(latents), "ratio": float(header["ratio"]),
               "encode_seconds": float(header["encode_seconds"]), "encoder_sha256": header["encoder_sha256"],
               "decoder_sha256": header["decoder_sha256"], "init": header["init"], "refine_steps": refine,
               "refine_used": json.loads(header["refine_used"]), "refine_loss": json.loads(header["refine_loss"])}
    if report_file is not None:
        report_file.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if not quiet:
        err(f"latent: {summary['original_tokens']:,} decoder tokens -> {summary['latents']:,} vectors "
            f"in {summary['chunks']} chunks · {summary['ratio']:.1f}x · {summary['encode_seconds'] * 1000:,.0f} ms"
            + (" (every chunk gets the same number of vectors: a text this short compresses less than the rate)"
               if summary["ratio"] < 0.9 * rate else "")
            + (f" · refined {sum(summary['refine_used']) / len(summary['refine_used']):.1f} steps per chunk on "
               f"average, worst chunk loss {max(summary['refine_loss']):.3f}" if summary["refine_loss"] else ""))


FileArg = Annotated[Path, typer.Argument(metavar="FILE", help="A .safetensors file from `compress -m latent -o`.")]


def register(app: typer.Typer) -> None:
    @app.command()
    @handle_errors
    def decode(file: FileArg) -> None:
        """Reconstruct the text from a latent file (exit 3 when it was written by other models)."""
        from ..latent import codec
        from ..latent.runtime import runtime

        lf = codec.read(file)  # the file itself first: a bad or retired file fails before models load
        rt = runtime()
        sys.stdout.write(rt.decode(lf.check(rt.expect()).latents))
        sys.stdout.write("\n")
        sys.stdout.flush()

    @app.command()
    @handle_errors
    def ask(file: FileArg,
            question: Annotated[str, typer.Option("--question", "-Q", help="What to ask about the text.")],
            direct: Annotated[bool, typer.Option("--direct", help="Put the latents themselves before the "
                                                 "question instead of the text reconstructed from them "
                                                 "(faster; see the model card for how well it answers).")] = False,
            ) -> None:
        """Answer a question from a latent file with the decoder LM (by default it reconstructs
        the text from the latents first and answers from that)."""
        from ..latent import codec
        from ..latent.runtime import runtime

        if not question.strip():
            raise UsageError("--question is empty")
        lf = codec.read(file)
        rt = runtime()
        sys.stdout.write(rt.ask(lf.check(rt.expect()).latents, question, direct=direct) + "\n")
        sys.stdout.flush()
