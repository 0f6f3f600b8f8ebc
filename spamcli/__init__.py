"""spamcli: a spam classifier for the people who run online communities.

The library behind the ``spamcli`` command. For a web app or a bot::

    from spamcli import SpamFilter
    spam_filter = SpamFilter.load()          # the shipped default model, or SpamFilter.load("dir")
    for verdict in spam_filter.score(["WIN a FREE iPhone at http://x.example"]):
        print(verdict.score, verdict.label, verdict.lang, verdict.model)
"""

__version__ = "0.1.0"

__all__ = ["SpamFilter", "__version__"]


def __getattr__(name):  # lazy: importing spamcli must stay cheap for the CLI's start-up
    if name == "SpamFilter":
        from .api import SpamFilter

        return SpamFilter
    raise AttributeError(name)
