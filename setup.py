"""Build of the optional C extension; everything else is declared in pyproject.toml.

``spamcli._speedups`` (spamcli/_speedups.c) makes feature extraction several times faster. It is
optional: without a C compiler the build goes on and spamcli runs its pure-Python code, which gives
the same results (set ``SPAMCLI_PURE_PYTHON=1`` to use that code even when the extension is built).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("spamcli._speedups", ["spamcli/_speedups.c"], optional=True),
    ]
)
