"""Model files shipped with spamcli: ``default/`` (the pre-trained bundle) and ``lid.176.ftz``.

Installed as the package ``spamcli.models`` (see ``pyproject.toml``), so the default model is found
after a plain ``pip install .`` as well as in a source checkout.
"""
