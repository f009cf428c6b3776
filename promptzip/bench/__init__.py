"""`make bench` (`python -m promptzip.bench`): the measured numbers of BENCHMARKS.md, one module per
section family (pipeline, extract, fidelity, reader, structure, formats, rag, rewrite, latent, serve,
knobs, models, languages, scaleout), what they share in `common`, the command line in `__main__`."""
