"""`promptzip eval`: every compressor judged by the same measurements on the same data.

data.py loads the dataset shapes, baselines.py holds eval-only floors (random word dropping),
metrics.py the text metrics and bootstrap intervals, reader.py the local SmolLM2 reader,
embed.py MiniLM similarity, run.py the loop and aggregation, output.py JSON/Markdown/PNG.
"""
