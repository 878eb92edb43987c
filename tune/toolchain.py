"""The C++ compiler that torch's inductor (``torch.compile``, AOTInductor) builds CPU code with.

Training compiles the decoder layers with it (``tune.train``) and the fast path compiles its
packages and kernel (``tune.fastlm``); both are only speed, and both are skipped without one.
"""

from __future__ import annotations

import os
import shutil


def compiler() -> str | None:
    """The compiler to use: ``$CXX``, else the usual names, the first one on PATH; None if none."""
    return next((c for c in (os.environ.get("CXX", "g++"), "g++", "clang++", "c++") if shutil.which(c)), None)


def compiler_available() -> bool:
    """Whether inductor can build CPU code here."""
    return compiler() is not None


__all__ = ["compiler", "compiler_available"]
