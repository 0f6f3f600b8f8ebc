"""Build of the optional C extensions; everything else is declared in pyproject.toml.

``spamcli._speedups`` (spamcli/_speedups.c) makes feature extraction several times faster;
``spamcli._fastlid`` (spamcli/_fastlid.c) predicts fastText's language of a text exactly as the
fasttext binding does, ~4x faster. Both are optional: without a C compiler the build goes on and
spamcli runs its pure-Python code and the fasttext binding, which give the same results (set
``SPAMCLI_PURE_PYTHON=1`` / ``SPAMCLI_FASTTEXT_LIB=1`` to use those even when the extensions are built).
"""

import sys

from setuptools import Extension, setup

# Results must be bit-identical to the reference code (and to fastText's, which is built without
# fused multiply-add): no floating-point contraction. The sources also say so with a pragma.
NO_FMA = [] if sys.platform == "win32" else ["-ffp-contract=off"]

setup(
    ext_modules=[
        Extension("spamcli._speedups", ["spamcli/_speedups.c"], optional=True, extra_compile_args=NO_FMA),
        Extension("spamcli._fastlid", ["spamcli/_fastlid.c"], optional=True, extra_compile_args=NO_FMA),
    ]
)
