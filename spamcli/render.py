"""How the ``spamcli`` command shows results to people: Rich tables and lines on a console.

Only the CLI renders; the library returns data (reports, evaluations, descriptions) that a web app
can show its own way. Machine-readable output is the ``--json`` of each command. Rich is imported
only when something is shown (the start-up of a message run does without it).
"""

from __future__ import annotations

import contextlib
from pathlib import Path


def stdout():
    """A Rich console on stdout (tables of ``info`` and ``evaluate``; no ``:name:`` emoji codes: a
    context or file name such as ``a:b:c`` is printed as it is)."""
    from rich.console import Console

    return Console(emoji=False)


def stderr():
    """A Rich console on stderr (progress, summaries, warnings)."""
    from rich.console import Console

    return Console(stderr=True, emoji=False)


def warning(console, message: str) -> None:
    console.print(f"[yellow]warning:[/] {message}")


@contextlib.contextmanager
def status(console, what: str, enabled: bool = True):
    """A spinner on ``console`` saying ``what`` is being done; yields ``update(message)`` (None if
    not ``enabled``)."""
    if not enabled:
        yield None
        return
    with console.status(what) as shown:
        yield shown.update


def created_site_model(console, model: Path) -> None:
    console.print(
        f"{model} did not exist: created it as a copy of the shipped model; it now learns from this site",
        markup=False,
    )


@contextlib.contextmanager
def progress_bar(console):
    """A Rich progress bar on ``console`` counting records; yields ``advance(n)``."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("scoring"), BarColumn(), TextColumn("{task.completed:,} records"))
    with Progress(*columns, TimeElapsedColumn(), console=console, transient=False) as bar:
        task = bar.add_task("scoring", total=None)
        yield lambda n: bar.advance(task, n)


def train_report(console, report, out: Path) -> None:
    """The training summary: a table of languages, the counts and thresholds, warnings."""
    from rich.table import Table

    table = Table(title=f"training summary ({report.spam} spam, {report.ham} ham)")
    for col in ("language", "spam", "ham", "model", "AUC own", "AUC fallback"):
        table.add_column(col, justify="right" if col not in ("language", "model") else "left")
    for row in report.languages:
        table.add_row(
            row.lang,
            str(row.spam),
            str(row.ham),
            row.reason,
            "-" if row.auc_own is None else f"{row.auc_own:.3f}",
            "-" if row.auc_fallback is None else f"{row.auc_fallback:.3f}",
        )
    console.print(table)
    console.print(
        f"read {report.records_read}, unreadable {report.unreadable}, duplicates dropped "
        f"{report.duplicates}, conflicting labels dropped {report.conflicting}; "
        f"thresholds ham < {report.thresholds.ham} <= unsure < {report.thresholds.spam} <= spam; "
        f"held-out AUC {report.auc_out_of_fold:.4f}"
    )
    for message in report.warnings:
        warning(console, message)
    console.print(f"model written to {out}")


def moderation_counts(console, counts: dict) -> None:
    """How the rows of a moderation export were labeled (see :class:`spamcli.trainer.TrainResult`)."""
    console.print(
        f"moderation export: {counts['spam']} spam (hidden/blocked), {counts['ham']} ham (reviewed and kept), "
        f"{counts['skipped']} skipped (no moderation decision)"
    )


def learn_report(console, report, unreadable: int) -> None:
    """What ``spamcli learn`` did, on one line."""
    console.print(
        f"learned {report.learned}, moved {report.moved}, already known {report.unchanged}, "
        f"forgotten {report.forgotten}, not learned before {report.not_learned}, unreadable {unreadable}"
        + (f", empty {report.empty} (nothing to teach)" if report.empty else "")
        + "; "
        f"the model remembers {report.total_learned} learned messages",
        markup=False,
    )
    cal = report.calibration
    if cal is not None:
        from .site_calibration import MIN_EACH

        decisions = f"{cal['spam']} spam and {cal['ham']} ham decisions from exports"
        console.print(
            f"site calibration on {decisions}: gain {cal['gain']:.3f}, offset {cal['offset']:+.3f}"
            + (f", regression gain {cal['regression_gain']:.3f}" if cal.get("regression_gain") else ", no regression")
            if cal["gain"] is not None
            else f"site calibration: not yet ({decisions}; it needs {MIN_EACH} of each)",
            markup=False,
        )
    lessons = report.lesson_regression
    if lessons is not None:
        _lesson_regression_line(console, lessons)


def _lesson_regression_line(console, lessons: dict) -> None:
    """The lesson regression after ``learn`` (site_lessons): its gain, why not yet, or why not refitted."""
    from .site_lessons import MAX_LESSONS, MIN_EACH

    spam, ham = lessons["spam"], lessons["ham"]
    taught = f"{spam} spam and {ham} ham taught"
    each = MAX_LESSONS // 2
    if lessons.get("not_refitted"):
        line = f"the lesson regression was not refitted: {lessons['not_refitted']}"
    elif lessons["gain"] is not None:
        sample = f" (fitted on the first {min(spam, each)} and {min(ham, each)})" if max(spam, ham) > each else ""
        line = f"lesson regression on {taught}{sample}: gain {lessons['gain']:.3f}"
    elif min(spam, ham) < MIN_EACH:
        line = f"lesson regression: not yet ({taught}; it needs {MIN_EACH} of each)"
    else:
        line = f"lesson regression: none ({taught}, but no word in them to fit on)"
    if spam + ham or lessons.get("not_refitted"):
        console.print(line, markup=False)
    weights = lessons.get("class_weights") or {}
    for key, name, other, n, n_other in (("spam", "spam", "genuine", spam, ham), ("ham", "genuine", "spam", ham, spam)):
        weight = weights.get(key, 1.0)
        if weight < 1.0:
            console.print(
                f"the site layer counts the {n} {name} messages taught as {n * weight:.0f} beside {n_other} "
                f'{other}: teach {other} messages too (docs/moderation.md, "one class")',
                markup=False,
            )


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _interval(bounds) -> str:
    return "-" if bounds is None else f"{bounds[0]:.3f}-{bounds[1]:.3f}"


def evaluation(console, result) -> None:
    """What ``spamcli evaluate`` measured, as tables (``--json`` gives it all)."""
    from rich import box
    from rich.table import Table

    from .evaluation import table_groups

    # Two narrow tables, not one wide one: at 80 columns (an SSH terminal, output to a file) a
    # 14-column table has Rich cut every number to "0.…".
    groups = table_groups(result)
    table = Table(title="evaluation (unsure counts as not flagged)", box=box.SIMPLE_HEAD)
    for col in ("group", "n", "precision", "recall", "F1", "FP rate", "AUC", "unsure"):
        table.add_column(col, justify="left" if col == "group" else "right", no_wrap=True)
    for name, rep in groups:
        table.add_row(
            name,
            str(rep.n),
            _fmt(rep.precision),
            _fmt(rep.recall),
            _fmt(rep.f1),
            _fmt(rep.fpr),
            _fmt(rep.auc),
            f"{rep.unsure_rate:.1%}",
        )
    console.print(table)
    counts = Table(title="counts (flagged = labelled spam)", box=box.SIMPLE_HEAD)
    for col in ("group", "spam", "ham", "TP", "FP", "TN", "FN"):
        counts.add_column(col, justify="left" if col == "group" else "right", no_wrap=True)
    for name, rep in groups:
        c = rep.confusion
        counts.add_row(name, str(rep.n_spam), str(rep.n_ham), str(c["tp"]), str(c["fp"]), str(c["tn"]), str(c["fn"]))
    table = counts
    console.print(table)
    overall = result.overall
    if overall.recall_ci95 or overall.fpr_ci95:
        console.print(
            "95% intervals (Wilson) over all records: recall "
            + _interval(overall.recall_ci95)
            + ", FP rate "
            + _interval(overall.fpr_ci95)
            + " (per group: --json)"
        )
    t = result.thresholds
    console.print(
        f"thresholds: ham < {t.ham}, spam >= {t.spam}; Brier score {result.brier:.4f}; "
        f"recall at FP rate 0.5%: {_fmt(result.recall_at_fpr.get('0.005'))}"
    )
    rec = result.recommended
    if rec:
        console.print(
            f"recommended spam threshold for precision >= {result.target_precision}: "
            f"{rec['threshold']:.4f} (recall {rec['recall']:.3f}, FP rate {rec['fpr']:.4f})"
        )
    else:
        console.print(f"no threshold reaches precision {result.target_precision} on this data")
    rel = Table(title="reliability (calibration)")
    for col in ("score bin", "n", "mean score", "spam fraction"):
        rel.add_column(col, justify="right")
    for row in result.reliability:
        rel.add_row(row["bin"], str(row["count"]), f"{row['mean_score']:.3f}", f"{row['spam_fraction']:.3f}")
    console.print(rel)
    for title, items in (
        ("worst false positives", result.false_positives),
        ("worst false negatives", result.false_negatives),
    ):
        if items:
            console.print(f"[bold]{title}[/]")
            for e in items:
                snippet = " ".join(e.text.split())[:120]
                console.print(f"  {e.score:.3f} [{e.lang}/{e.model}] {e.id}: {snippet}", markup=False)
    if result.skipped:
        console.print(f"skipped {result.skipped} unreadable or unlabeled records")


def learned_records_warning(console, learned: int) -> None:
    """Evaluating on messages the model was taught measures its memory, not the site."""
    warning(
        console,
        f"{learned} of these records were taught to this model (spamcli learn): they get the moderators' "
        "label and the site layer counted them, so the figures are optimistic; evaluate on messages not taught",
    )


def _context_title(name: str, ctx: dict) -> str:
    """One context's line of ``info``: thresholds, what was learned, and how the site is fitted."""
    t, learned = ctx["thresholds"], ctx["learned"]
    parts = [f"context {name}: thresholds ham < {t['ham']}, spam >= {t['spam']}"]
    parts.append(f"learned {learned['spam']} spam, {learned['ham']} ham")
    if "scoring" in ctx:
        spam_cut = ctx.get("scoring_thresholds", {}).get("spam")
        parts.append(f"profile scoring: {ctx['scoring']}" + (f" (spam >= {spam_cut})" if spam_cut is not None else ""))
    if ctx.get("fp_budgets"):
        parts.append(f"--max-fpr budgets {', '.join(ctx['fp_budgets'])}")
    if "site_calibration" in ctx:
        cal = ctx["site_calibration"]
        regression = f", regression gain {cal['regression_gain']:.3f}" if cal.get("regression_gain") else ""
        parts.append(f"site calibration gain {cal['gain']:.3f}, offset {cal['offset']:+.3f}{regression}")
    if "lesson_regression" in ctx:
        parts.append(f"lesson regression gain {ctx['lesson_regression']['gain']:.3f}")
    return "; ".join(parts)


def model_info(console, data: dict) -> None:
    """What :func:`spamcli.info.describe` says of a model, as a table per context."""
    from rich.table import Table
    from rich.text import Text

    console.print(
        f"model {data['path']}\ncreated {data['created']}, spamcli {data['spamcli_version']}, "
        f"format version {data['format_version']}, features version {data['features_version']}, "
        f"learned messages {data['learned_messages']}",
        markup=False,
    )
    for name, ctx in data["contexts"].items():
        table = Table(title=Text(_context_title(name, ctx)))  # not markup: a context's name is the user's
        for col in ("model", "kind", "spam", "ham", "ham threshold", "spam threshold"):
            table.add_column(col, justify="left" if col in ("model", "kind") else "right")
        for lang, entry in ctx["models"].items():
            own = entry["thresholds"] or {}
            table.add_row(
                lang,
                entry["kind"],
                str(entry["examples"]["spam"]),
                str(entry["examples"]["ham"]),
                str(own.get("ham", "-")),
                str(own.get("spam", "-")),
            )
        console.print(table)
