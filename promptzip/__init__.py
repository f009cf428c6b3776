"""promptzip: prompt and context compression for LLMs."""

from ._version import __version__
from .api import CompressResult, Request, compress, compress_file
from .compressors import Compressor
from .rag import PassagesResult, compress_passages
from .report import Report

__all__ = ["Compressor", "CompressResult", "PassagesResult", "Report", "Request", "compress", "compress_file",
           "compress_passages", "__version__"]
