"""`latent`: text encoded into a few vectors that SmolLM2 reads in place of the text (see
`promptzip.latent`). Its output is a `.safetensors` file, not text, so it does not run through
the text pipeline: `promptzip compress -m latent -o FILE` writes the file, `promptzip decode
FILE` reconstructs the text and `promptzip ask FILE --question Q` answers from the latents."""

from __future__ import annotations

from ..context import Context
from ..errors import UsageError
from .base import Compressor, Param

REFINE_DEFAULT = 0  # one pass of the encoder; refinement is a polish asked for


class Latent(Compressor):
    name = "latent"
    description = ("Latent vectors SmolLM2 reads instead of the text (one pass of a SmolLM2 encoder; "
                   "-p refine=N polishes them through the decoder, slowly); writes a .safetensors file: "
                   "compress -m latent -o FILE, then decode / ask.")
    params = (
        Param("rate", int, 4, "decoder tokens per latent vector (compression rate; the shipped encoder "
              "is trained for 4 and 8)", (4, 8, 16)),
        Param("refine", int, REFINE_DEFAULT, "refinement steps at most per chunk after the encoder: the "
              "latents are moved through the decoder until it reproduces the chunk (slow: about "
              "0.5 s per chunk and step on 2 cores; 0 = the encoder's latents as they are)", bounds=(0, None)),
        Param("init", str, "encoder", "where the latents start: the encoder's one pass (encoder) or the "
              "mean of the decoder's token embeddings per latent (mean; only useful with refine)",
              ("encoder", "mean")),
    )

    def compress(self, ctx: Context) -> None:
        raise UsageError("-m latent writes a .safetensors file, not text",
                         "Use `promptzip compress -m latent -o FILE`, then `promptzip decode FILE`.")
