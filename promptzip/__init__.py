"""promptzip: prompt and context compression for LLMs."""

__version__ = "0.1.0"

from .compressors import Compressor  # noqa: E402
from .pipeline import CompressResult, Request, compress, compress_file  # noqa: E402
from .rag import PassagesResult, compress_passages  # noqa: E402
from .report import Report  # noqa: E402

__all__ = ["Compressor", "CompressResult", "PassagesResult", "Report", "Request", "compress", "compress_file",
           "compress_passages", "__version__"]
