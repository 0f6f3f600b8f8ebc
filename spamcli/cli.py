"""The ``spamcli`` command: a thin layer that turns options into library calls.

Data goes to stdout, everything else (progress, summaries, warnings, errors) to stderr. Errors are
one line, ``spamcli: error: ...``, with the exit codes of :mod:`spamcli.errors`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer

from . import __version__
from .errors import (
    EXIT_BUG,
    EXIT_INPUT,
    EXIT_OK,
    EXIT_SIGNAL_BASE,
    EXIT_USAGE,
    InputError,
    SpamcliError,
    UsageError,
)

app = typer.Typer(
    name="spamcli",
    help="Spam classifier for online communities: language-routed Naive Bayes, calibrated and explainable.",
    epilog="Example:  echo 'WIN a FREE iPhone at http://x.example' | spamcli classify",
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

ModelOpt = Annotated[
    Path | None,
    typer.Option("--model", "-m", help="Model directory (default: the model shipped with spamcli)."),
]
ContextOpt = Annotated[str, typer.Option("--context", "-c", help="content (messages) or profile.")]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="auto, text, jsonl, csv, tsv, parquet or decidim.")]
TextColOpt = Annotated[str | None, typer.Option("--text-col", help="Text field/column (default: auto).")]
LabelColOpt = Annotated[str | None, typer.Option("--label-col", help="Label field/column (default: auto).")]
LangColOpt = Annotated[str, typer.Option("--lang-col", help="Field with a known language code; '' to always detect.")]
EngineOpt = Annotated[
    str,
    typer.Option("--engine", help="local, or dask: each file of a directory/glob is a partition on a Dask cluster."),
]
SchedulerOpt = Annotated[
    str | None, typer.Option("--scheduler", help="Dask scheduler address (tcp://host:8786); default: a local cluster.")
]


def _stderr():
    from rich.console import Console

    return Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        print(f"spamcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """spamcli: spam scores for messages and profiles, one JSON line per record.

    Example: echo "WIN a FREE iPhone at http://x.example" | spamcli classify
    """


def _read_options(fmt: str, text_col, label_col, lang_col: str, need_label: bool, max_bytes: int = 1_000_000):
    from .records import ReadOptions

    if max_bytes < 1:
        raise UsageError("--max-bytes must be 1 or more")
    return ReadOptions(
        format=fmt,
        text_field=text_col,
        label_field=label_col,
        lang_field=lang_col or None,
        need_label=need_label,
        max_bytes=max_bytes,
    )


FpBudgetOpt = Annotated[
    float | None,
    typer.Option(
        "--max-fpr",
        help="Label spam at the threshold chosen in training for this held-out false-positive rate: "
        "0.005, 0.01, 0.02, 0.03 or 0.05 (default: the model's own; 0.005 for the shipped model).",
    ),
]


def _load_filter(
    model: Path | None, context: str, ham: float | None = None, spam: float | None = None, max_fpr: float | None = None
):
    from .api import SpamFilter
    from .router import FP_BUDGETS

    spam_filter = SpamFilter.load(model, context=context)
    if max_fpr is not None:
        if ham is not None or spam is not None:
            raise UsageError("--max-fpr picks each model's thresholds; give it or --spam/--ham-threshold, not both")
        if max_fpr not in FP_BUDGETS:
            raise UsageError(f"--max-fpr must be one of {', '.join(f'{b:g}' for b in FP_BUDGETS)}")
        try:
            spam_filter = spam_filter.with_fp_budget(max_fpr)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if ham is not None or spam is not None:
        spam_filter = spam_filter.with_thresholds(ham=ham, spam=spam)
        if spam_filter.thresholds.ham > spam_filter.thresholds.spam:
            raise UsageError("--ham-threshold must not be above --spam-threshold")
    return spam_filter


# ---- classify -----------------------------------------------------------------------------
@app.command(
    epilog="Examples:  echo 'WIN a FREE iPhone at http://x.example' | spamcli classify\n\n"
    "tail -f comments.jsonl | spamcli classify --explain | jq -c 'select(.label==\"spam\")'"
)
def classify(
    inputs: Annotated[list[str] | None, typer.Argument(help="Files to read; '-' or none for stdin.")] = None,
    model: ModelOpt = None,
    context: ContextOpt = "content",
    fmt: FormatOpt = "auto",
    text_col: TextColOpt = None,
    id_col: Annotated[str | None, typer.Option("--id-col", help="Id field/column (default: id).")] = None,
    lang_col: LangColOpt = "lang",
    explain: Annotated[bool, typer.Option("--explain", help="Add the tokens that drove each score.")] = False,
    top: Annotated[int, typer.Option("--top", help="How many tokens --explain lists.")] = 5,
    spam_threshold: Annotated[float | None, typer.Option(help="Score at or above which: spam.")] = None,
    ham_threshold: Annotated[float | None, typer.Option(help="Score below which: ham.")] = None,
    max_fpr: FpBudgetOpt = None,
    batch_size: Annotated[int, typer.Option(help="Largest micro-batch.")] = 1024,
    max_bytes: Annotated[int, typer.Option(help="Longest record accepted, in bytes.")] = 1_000_000,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (CSV if it ends in .csv, else JSONL).")
    ] = None,
    only: Annotated[str | None, typer.Option("--only", help="Keep only these labels, e.g. spam,unsure.")] = None,
    csv_raw: Annotated[
        bool, typer.Option("--csv-raw", help="CSV --output: keep cells starting with = + - @ as they are (no ').")
    ] = False,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Progress bar on stderr (default: on a terminal).")
    ] = None,
    trusted_domains: Annotated[
        Path | None, typer.Option(help="Profiles: file of e-mail domains (.edu, example.org, regex) reported as ham.")
    ] = None,
    trusted_ids: Annotated[Path | None, typer.Option(help="Profiles: file of account ids reported as ham.")] = None,
    scoring: Annotated[
        Path | None, typer.Option(help="Profiles: JSON/TOML file overriding signal weights (see README).")
    ] = None,
    jobs: Annotated[
        int, typer.Option("--jobs", "-j", help="Worker processes scoring batches (0: one per CPU, up to 4; 1: none).")
    ] = 0,
    engine: EngineOpt = "local",
    scheduler: SchedulerOpt = None,
) -> None:
    """Score messages or profiles: one JSON line per input record, in order.

    Reads plain lines or JSON lines (or CSV/TSV/Parquet by extension or --format). Each output line
    is {"id", "score", "label": spam|unsure|ham, "lang", "model"}, or {"id", "error"} for a record
    that could not be read. With --context profile, records are profiles (about, personal_url,
    email, comments_count, locale, ...) and the output adds "signals". --output/--only turn it into
    a batch job with a summary on stderr. Exit code 0, 3 when the input held no usable record, 5
    when a worker process died (--jobs).
    """
    from .batch import JsonLinesSink, LabelCounts, label_of, open_sink, parse_only

    if jobs < 0:
        raise UsageError("--jobs must be 0 (one per CPU) or more")
    if batch_size < 1:
        raise UsageError("--batch-size must be 1 or more")
    wanted = parse_only(only)
    opts = _read_options(fmt, text_col, None, lang_col, need_label=False, max_bytes=max_bytes)
    opts.id_field = id_col
    if context == "profile":
        if engine != "local":  # the Dask engine scores messages only
            raise UsageError("--engine dask scores messages; not with --context profile")
        if max_fpr is not None:
            raise UsageError("--max-fpr picks message thresholds; profiles take --spam-threshold")
        scorer = _load_profile_scorer(model, ham_threshold, spam_threshold, trusted_domains, trusted_ids, scoring)
        opts.allow_empty_text = True

        def sources():
            explained = top if explain else 0
            return _classify_sources(scorer, inputs or ["-"], opts, explained, batch_size, jobs, engine, scheduler)
    else:
        if trusted_domains or trusted_ids or scoring:
            raise UsageError("--trusted-domains, --trusted-ids and --scoring need --context profile")
        spam_filter = _load_filter(model, context, ham_threshold, spam_threshold, max_fpr)

        def sources():
            explained = top if explain else 0
            return _classify_sources(spam_filter, inputs or ["-"], opts, explained, batch_size, jobs, engine, scheduler)

    sink = open_sink(output, csv_raw=csv_raw) if output else JsonLinesSink(sys.stdout)
    counts = LabelCounts()
    show_progress = sys.stderr.isatty() if progress is None else progress
    try:
        with _progress_bar(show_progress) as advance:
            for batches in sources():
                with contextlib.closing(batches):  # on an early exit too: workers stop here, not at teardown
                    for batch in batches:
                        counts.add(batch)
                        advance(len(batch))
                        sink.write([item for item in batch if wanted is None or label_of(item) in wanted])
    except BrokenPipeError:  # stdout's reader went away (| head): not click's exit 1, see main()
        raise _StdoutClosed() from None
    except BaseException:
        if output:
            sink.abort()
        raise
    seen, usable = sum(counts.values()), sum(counts.values()) - counts.get("error", 0)
    if output and usable:
        sink.commit()
    elif output:
        sink.abort()  # keep the previous output file when nothing could be scored
    if output or wanted or show_progress:
        kept = f"; {', '.join(sorted(wanted))} written" if wanted else ""
        _stderr().print(f"{counts.summary()}{kept}" + (f" to {output}" if output else ""), markup=False)
    if seen == 0:
        raise InputError("no records in the input")
    if usable == 0:
        raise InputError(f"none of the {seen} records could be read (see the error records)")


def _load_profile_scorer(model, ham, spam, trusted_domains, trusted_ids, scoring):
    from .bundle import load_bundle
    from .profiles import DomainMatcher, ProfileScorer, TrustLists, read_list_file, read_scoring_file
    from .router import Thresholds

    bundle = load_bundle(model)
    trust = TrustLists(
        domains=DomainMatcher(read_list_file(trusted_domains) if trusted_domains else []),
        ids=set(read_list_file(trusted_ids)) if trusted_ids else set(),
    )
    scorer = ProfileScorer(bundle, read_scoring_file(scoring) if scoring else None, trust)
    if ham is not None or spam is not None:
        base = scorer.thresholds_for("multi")
        scorer.override = Thresholds(ham=base.ham if ham is None else ham, spam=base.spam if spam is None else spam)
        if scorer.override.ham > scorer.override.spam:
            raise UsageError("--ham-threshold must not be above --spam-threshold")
    return scorer


@contextlib.contextmanager
def _progress_bar(enabled: bool):
    """A Rich progress bar on stderr counting records; yields ``advance(n)`` (a no-op if disabled)."""
    if not enabled:
        yield lambda _n: None
        return
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("scoring"), BarColumn(), TextColumn("{task.completed:,} records"))
    with Progress(*columns, TimeElapsedColumn(), console=_stderr(), transient=False) as bar:
        task = bar.add_task("scoring", total=None)
        yield lambda n: bar.advance(task, n)


def _engine(engine: str, scheduler: str | None) -> bool:
    """Whether the Dask engine is chosen (checks the two options)."""
    if engine not in ("local", "dask"):
        raise UsageError("--engine must be local or dask")
    if scheduler and engine != "dask":
        raise UsageError("--scheduler needs --engine dask")
    return engine == "dask"


def _regular_file(path: str) -> bool:
    """Whether ``path`` (``-``: stdin) is a regular file, which a reader never waits on."""
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode if path == "-" else os.stat(path).st_mode
    except (OSError, ValueError, AttributeError):  # no such file (read_records says so), no real stdin
        return False
    return stat.S_ISREG(mode)


def _classify_sources(spam_filter, inputs, opts, explain, batch_size, jobs, engine, scheduler):
    """Per input, an iterator of output batches: local files/stdin, or partitions on Dask."""
    from .records import read_records

    if not _engine(engine, scheduler):
        from .stream import available_jobs, small_input

        for path in inputs:
            path_jobs = 1 if jobs == 0 and small_input(path) else jobs  # by default, no workers for a few lines
            raw = available_jobs(path_jobs) > 1  # workers parse plain and JSON lines: the reader only reads
            regular = _regular_file(path)
            wait = None if regular else 0.01  # a pipe or terminal: micro-batches for latency
            yield spam_filter.classify_batches(
                read_records(path, opts, raw_lines=raw, raw_blocks=raw and regular),
                explain=explain,
                max_batch=batch_size,
                max_wait=wait,
                jobs=path_jobs,
                read_options=opts if raw else None,
            )
        return
    from .dask_engine import classify_partitions, expand_inputs, session

    files = expand_inputs(inputs)
    with session(scheduler) as client:
        yield classify_partitions(client, spam_filter, files, opts, explain=explain, batch=batch_size)


# ---- train --------------------------------------------------------------------------------
@app.command(
    epilog="Examples:  spamcli train messages.csv --out my-model\n\n"
    "spamcli train --spam spam.txt --ham ham.txt --out my-model\n\n"
    "spamcli train export.jsonl --text-col body --label-col hidden --out my-model"
)
def train(
    inputs: Annotated[list[str] | None, typer.Argument(help="Labeled CSV/TSV/JSONL/Decidim files.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Model directory to write.")] = Path("model"),
    spam: Annotated[list[str] | None, typer.Option("--spam", help="File of spam, one per line.")] = None,
    ham: Annotated[list[str] | None, typer.Option("--ham", help="File of ham, one per line.")] = None,
    context: ContextOpt = "content",
    fmt: FormatOpt = "auto",
    text_col: TextColOpt = None,
    label_col: LabelColOpt = None,
    lang_col: LangColOpt = "lang",
    min_per_class: Annotated[int, typer.Option(help="Examples of each class a language needs.")] = 30,
    max_fpr: Annotated[float, typer.Option(help="Held-out false-positive rate allowed at the spam threshold.")] = 0.005,
    alpha: Annotated[float, typer.Option(help="Naive Bayes smoothing.")] = 0.1,
    lang_backend: Annotated[str, typer.Option(help="fasttext or langdetect.")] = "fasttext",
    domain_col: Annotated[
        str | None, typer.Option("--domain-col", help="Column naming each record's source; balances sources.")
    ] = None,
    community_col: Annotated[
        str | None,
        typer.Option(
            "--community-col",
            help="Column naming each record's community (site, channel, data set): spam cuts are also fit "
            "with each community left out, for sites the model has never seen.",
        ),
    ] = None,
    dedupe: Annotated[bool, typer.Option(help="Drop duplicate texts.")] = True,
    json_summary: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
    hidden_col: Annotated[
        str | None, typer.Option(help="Moderation export: a true value here (e.g. hidden_at set) means spam.")
    ] = None,
    blocked_col: Annotated[str | None, typer.Option(help="Moderation export: a true value here means spam.")] = None,
    label_rule: Annotated[
        str | None, typer.Option(help="Moderation export: spam when this rule holds, e.g. \"hidden_at != ''\".")
    ] = None,
    reviewed_col: Annotated[
        str | None, typer.Option(help="Moderation export: reviewed-and-kept (ham) when true (default: auto).")
    ] = None,
    ham_rule: Annotated[str | None, typer.Option(help="Moderation export: ham when this rule holds.")] = None,
    kind: Annotated[
        str, typer.Option(help="nblr (NB-weighted logistic regression) or nb (Naive Bayes only).")
    ] = "nblr",
    out_of_core: Annotated[
        bool, typer.Option("--out-of-core", help="Stream files of any size in chunks: one NB model, no languages.")
    ] = False,
    chunk_size: Annotated[int, typer.Option(help="Records per chunk with --out-of-core.")] = 20_000,
    engine: EngineOpt = "local",
    scheduler: SchedulerOpt = None,
) -> None:
    """Learn a model from labeled data and write it atomically to --out.

    Labels: spam/ham, 1/0, true/false; or moderators' decisions in a moderation export
    (--hidden-col, --blocked-col, --label-rule: spam; reviewed and kept: ham; others skipped).
    One Naive Bayes model per language with enough examples of both classes, plus a multilingual
    fallback; thresholds chosen on held-out folds.
    """
    import contextlib
    import itertools

    from .bundle import Bundle, load_bundle, save_bundle
    from .learning import model_lock
    from .records import ReadOptions, read_records
    from .training import TrainOptions, train_context, train_out_of_core

    if not inputs and not spam and not ham:
        raise UsageError("give labeled files, or --spam and --ham files")
    if kind not in ("nb", "nblr"):
        raise UsageError("--kind must be nb or nblr")
    use_dask = _engine(engine, scheduler)
    if out_of_core and (use_dask or kind != "nb"):
        raise UsageError("--out-of-core trains --kind nb, with the local engine")
    if chunk_size < 1:
        raise UsageError("--chunk-size must be at least 1")
    if lang_backend not in ("fasttext", "langdetect"):
        raise UsageError("--lang-backend must be fasttext or langdetect")
    labeler = None
    if hidden_col or blocked_col or label_rule or reviewed_col or ham_rule:
        from .moderation import ModerationLabeler

        if label_col:
            raise UsageError("--label-col cannot be combined with the moderation-export options")
        labeler = ModerationLabeler(hidden_col, blocked_col, label_rule, reviewed_col, ham_rule)
    opts = _read_options(fmt, text_col, label_col, lang_col, need_label=labeler is None)
    sources = [read_records(p, opts) for p in ([] if use_dask else inputs or [])]
    if labeler is not None and sources:
        sources = [labeler.apply(itertools.chain.from_iterable(sources))]
    for paths, label in ((spam or [], 1), (ham or [], 0)):
        for p in paths:
            sources.append(read_records(p, ReadOptions(format="text", default_label=label)))
    console = _stderr()
    train_opts = TrainOptions(
        context=context,
        alpha=alpha,
        min_per_class=min_per_class,
        max_fpr=max_fpr,
        lang_backend=lang_backend,
        dedupe=dedupe,
        domain_field=domain_col,
        source_field=community_col,
        kind=kind,
    )
    if context == "profile" and (out_of_core or use_dask):
        raise UsageError("--out-of-core and --engine dask train the content context")
    with contextlib.ExitStack() as stack:
        transform = None
        if use_dask:
            from .dask_engine import expand_inputs, read_partitions, session, transformer

            files = expand_inputs(inputs or [])
            client = stack.enter_context(session(scheduler))
            partitions = read_partitions(client, files, opts)
            sources.insert(0, labeler.apply(partitions) if labeler is not None else partitions)
            transform = transformer(client)
        records = itertools.chain.from_iterable(sources)
        status = stack.enter_context(console.status("training"))
        if out_of_core:
            ctx, report = train_out_of_core(records, train_opts, chunk_size, progress=status.update)
        elif context == "profile":
            from .profiles import train_profile

            ctx, report = train_profile(records, train_opts, progress=status.update)
        else:
            ctx, report = train_context(records, train_opts, progress=status.update, transform=transform)
    if labeler is not None:
        c = labeler.counts
        console.print(
            f"moderation export: {c['spam']} spam (hidden/blocked), {c['ham']} ham (reviewed and kept), "
            f"{labeler.skipped} skipped (no moderation decision)"
        )
    out.mkdir(parents=True, exist_ok=True)
    with model_lock(out):  # a concurrent `spamcli learn` waits instead of being overwritten
        existing, learned = {}, {}
        if (out / "manifest.json").exists():
            try:
                old = load_bundle(out)
                existing = dict(old.contexts)
                # messages learned into other contexts stay; this context's models are new
                learned = {k: v for k, v in old.learned.items() if v.get("context") != context}
            except SpamcliError as exc:
                console.print(f"[yellow]warning:[/] replacing unreadable model in {out}: {exc}")
        existing[context] = ctx
        save_bundle(Bundle(contexts=existing, learned=learned), out)
    _print_train_report(console, report, out)
    if json_summary:
        print(json.dumps(report.to_dict(), indent=2))


def _print_train_report(console, report, out: Path) -> None:
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
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    console.print(f"model written to {out}")


# ---- evaluate -----------------------------------------------------------------------------
@app.command(
    epilog="Examples:  spamcli evaluate test.csv --model my-model\n\n"
    "spamcli evaluate data.csv --cv 5 --json | jq .overall"
)
def evaluate(
    inputs: Annotated[list[str], typer.Argument(help="Labeled files.")],
    model: ModelOpt = None,
    context: ContextOpt = "content",
    fmt: FormatOpt = "auto",
    text_col: TextColOpt = None,
    label_col: LabelColOpt = None,
    lang_col: LangColOpt = "lang",
    cv: Annotated[int, typer.Option("--cv", help="Cross-validate training on the file, K folds.")] = 0,
    target_precision: Annotated[float, typer.Option(help="Precision the recommended threshold keeps.")] = 0.99,
    errors: Annotated[int, typer.Option("--errors", help="List the N worst false positives/negatives.")] = 0,
    spam_threshold: Annotated[float | None, typer.Option(help="Override the spam threshold.")] = None,
    ham_threshold: Annotated[float | None, typer.Option(help="Override the ham threshold.")] = None,
    max_fpr: FpBudgetOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout instead of tables.")] = False,
) -> None:
    """Measure a model on labeled data: precision, recall, F1, false-positive rate, ROC-AUC.

    Overall and per language, with a recommended spam threshold for --target-precision.
    "unsure" counts as not flagged.
    """
    import itertools

    from .evaluation import cross_validate, evaluate_model
    from .records import read_records

    if cv < 0 or cv == 1:
        raise UsageError("--cv needs at least 2 folds (0 evaluates --model instead)")
    if cv and (max_fpr is not None or spam_threshold is not None or ham_threshold is not None):
        raise UsageError("--max-fpr and --spam/--ham-threshold apply to --model, not to --cv")
    opts = _read_options(fmt, text_col, label_col, lang_col, need_label=True)
    records = itertools.chain.from_iterable(read_records(p, opts) for p in inputs)
    if cv:
        from .training import TrainOptions

        console = _stderr()
        with console.status("cross-validating") as status:
            result = cross_validate(
                records,
                TrainOptions(context=context),
                folds=cv,
                target_precision=target_precision,
                errors=errors,
                progress=lambda m: status.update(m),
            )
    else:
        spam_filter = _load_filter(model, context, ham_threshold, spam_threshold, max_fpr)
        result = evaluate_model(spam_filter, records, target_precision=target_precision, errors=errors)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        _print_evaluation(result)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


def _interval(bounds) -> str:
    return "-" if bounds is None else f"{bounds[0]:.3f}-{bounds[1]:.3f}"


def _print_evaluation(result) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from .evaluation import table_groups

    console = Console()
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


# ---- learn --------------------------------------------------------------------------------
@app.command(
    epilog="Examples:  spamcli learn --model my-model --spam missed.txt\n\n"
    "echo 'Thanks, see you Monday' | spamcli learn --model my-model --ham -\n\n"
    "spamcli learn --model my-model --forget wrongly-reported.jsonl"
)
def learn(
    inputs: Annotated[
        list[str] | None, typer.Argument(help="Messages: plain lines, JSONL or CSV; '-' for stdin.")
    ] = None,
    model: Annotated[Path | None, typer.Option("--model", "-m", help="Model directory to update.")] = None,
    as_spam: Annotated[bool, typer.Option("--spam", help="Learn the messages as spam.")] = False,
    as_ham: Annotated[bool, typer.Option("--ham", help="Learn the messages as ham.")] = False,
    forget: Annotated[bool, typer.Option("--forget", help="Forget previously learned messages.")] = False,
    context: ContextOpt = "content",
    fmt: FormatOpt = "auto",
    text_col: TextColOpt = None,
    json_summary: Annotated[bool, typer.Option("--json", help="Print what was done as JSON on stdout.")] = False,
) -> None:
    """Learn or forget messages without retraining (sa-learn style).

    Each message is remembered by the sha256 of its normalised text: learning it twice does
    nothing, learning it as the other class moves it, --forget removes it exactly. What is taught
    goes to the site layer (MODEL_DIR/site.sqlite) and moves the scores of similar messages at once.
    A --model DIR that does not exist yet starts as a copy of the shipped model.
    """
    import itertools

    from .learning import ensure_site_model, learn_messages
    from .records import read_records

    if model is None:
        raise UsageError("learn needs --model DIR (the shipped model is read-only)")
    actions = [name for name, on in (("spam", as_spam), ("ham", as_ham), ("forget", forget)) if on]
    if len(actions) != 1:
        raise UsageError("give exactly one of --spam, --ham or --forget")
    opts = _read_options(fmt, text_col, None, "", need_label=False)
    records = itertools.chain.from_iterable(read_records(p, opts) for p in inputs or ["-"])
    skipped = []

    def readable_texts():
        for rec in records:
            if rec.error:
                skipped.append(rec.id)
            else:
                yield rec.text

    if ensure_site_model(model):
        _stderr().print(
            f"{model} did not exist: created it as a copy of the shipped model; it now learns from this site",
            markup=False,
        )
    report = learn_messages(model, readable_texts(), actions[0], context=context)
    done = {**report.to_dict(), "unreadable": len(skipped)}
    if report.learned + report.moved + report.unchanged + report.forgotten + report.not_learned == 0:
        raise InputError("no messages in the input" + (f" ({len(skipped)} unreadable)" if skipped else ""))
    _stderr().print(
        f"learned {report.learned}, moved {report.moved}, already known {report.unchanged}, "
        f"forgotten {report.forgotten}, not learned before {report.not_learned}, unreadable {len(skipped)}; "
        f"the model remembers {report.total_learned} learned messages",
        markup=False,
    )
    if json_summary:
        print(json.dumps(done))


# ---- info ---------------------------------------------------------------------------------
@app.command(epilog="Examples:  spamcli info --model my-model\n\nspamcli info --json | jq .contexts.content.languages")
def info(
    model: ModelOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout instead of tables.")] = False,
) -> None:
    """Show what a model holds: contexts, languages, examples per class, learned messages,
    thresholds, creation date and versions."""
    from .info import describe

    data = describe(model)
    if as_json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"model {data['path']}\ncreated {data['created']}, spamcli {data['spamcli_version']}, "
        f"format version {data['format_version']}, features version {data['features_version']}, "
        f"learned messages {data['learned_messages']}",
        markup=False,
    )
    for name, ctx in data["contexts"].items():
        t = ctx["thresholds"]
        learned = ctx["learned"]
        table = Table(
            title=f"context {name}: thresholds ham < {t['ham']}, spam >= {t['spam']}; "
            f"learned {learned['spam']} spam, {learned['ham']} ham"
            + (f"; profile scoring: {ctx['scoring']}" if "scoring" in ctx else "")
            + (f" (spam >= {ctx['scoring_thresholds']['spam']})" if "scoring_thresholds" in ctx else "")
            + (f"; --max-fpr budgets {', '.join(ctx['fp_budgets'])}" if ctx.get("fp_budgets") else "")
        )
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


# ---- export -------------------------------------------------------------------------------
@app.command(epilog="Example:  spamcli export --model my-model --out model.json.gz")
def export(
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write (.json or .json.gz).")],
    model: ModelOpt = None,
    with_counts: Annotated[bool, typer.Option(help="Include the raw NB counts too.")] = False,
) -> None:
    """Write the model as portable JSON (no pickle), specified in docs/FORMAT.md."""
    from .bundle import load_bundle
    from .export import export_bundle

    bundle = load_bundle(model)
    path = export_bundle(bundle, out, with_counts=with_counts)
    _stderr().print(f"exported {', '.join(bundle.contexts)} to {path} ({path.stat().st_size:,} bytes)")


@app.command(
    epilog="Examples:  SPAMCLI_TOKEN=s3cret spamcli serve --model /srv/spamcli/model --workers 2\n\n"
    "curl -s localhost:8080/v1/classify -d '{\"text\": \"WIN a FREE iPhone\"}'"
)
def serve(
    model: ModelOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on (non-loopback needs a token).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    workers: Annotated[int, typer.Option("--workers", "-w", help="Worker processes sharing the model.")] = 2,
    token_file: Annotated[
        Path | None, typer.Option(help="File holding the token callers must send (else $SPAMCLI_TOKEN).")
    ] = None,
    max_bytes: Annotated[int, typer.Option(help="Longest text accepted, in bytes (an item error above).")] = 1_000_000,
) -> None:
    """Serve the model over HTTP: /v1/classify, /v1/learn, /v1/forget, /v1/reload, /metrics,
    /healthz and Decidim's /spam/detection (see docs/serve.md). Needs spamcli[serve]."""
    import importlib.util

    for name in ("starlette", "uvicorn", "prometheus_client"):  # found, not imported: see server.serve
        if importlib.util.find_spec(name) is None:
            raise UsageError(f"spamcli serve needs the serve extra ({name} is missing): pip install 'spamcli[serve]'")
    from .server import ServeOptions, read_token
    from .server import serve as run_server

    options = ServeOptions(
        model=model, host=host, port=port, workers=workers, token=read_token(token_file), max_bytes=max_bytes
    )
    raise typer.Exit(run_server(options))


# ---- entry point --------------------------------------------------------------------------
class _StdoutClosed(Exception):
    """stdout's reader went away; not an OSError, which click would turn into exit code 1."""


def _quiet_broken_pipe() -> None:
    """The reader of stdout went away (``| head -1``): stop quietly, as Unix tools do."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


def _click_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a click/typer usage exception (typer >= 0.29 vendors click)."""
    return hasattr(exc, "format_message") and hasattr(exc, "exit_code")


class _Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: unwinds the stack like KeyboardInterrupt does for Ctrl-C, so that
    temporary files are removed and worker processes stopped on the way out."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _on_termination(signum: int, _frame) -> None:
    signal.signal(signum, signal.SIG_IGN)  # once: a second SIGTERM must not cut the clean-up short
    raise _Terminated(signum)


def _catch_termination():
    """Turn SIGTERM and SIGHUP into :class:`_Terminated` while the CLI runs (where they are not
    ignored already, as ``nohup`` does); returns what puts the previous handlers back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {}
    for signum in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(signum) == signal.SIG_DFL:
            previous[signum] = signal.signal(signum, _on_termination)

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    return restore


def _leave(code: int):
    """``sys.exit(code)``, unless the input's reader thread is still blocked reading stdin (Ctrl-C
    or an error while a pipe is quiet). Then the interpreter's shutdown would close stdin under
    that thread, which holds stdin's lock: "Fatal Python error: _enter_buffered_busy" and SIGABRT
    instead of the exit code. Nothing is left to clean up by then (workers are stopped, temporary
    files removed on the way out), so the process flushes its output and leaves at once."""
    from .stream import READER_THREAD

    readers = [t for t in threading.enumerate() if t.name == READER_THREAD and t.is_alive()]
    for thread in readers:
        thread.join(0.1)  # a reader that is not blocked stops at its next record
    if any(t.is_alive() for t in readers) and _has_real_stdin():
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)
    sys.exit(code)


def _has_real_stdin() -> bool:
    try:
        sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return False
    return True


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; map errors to one line on stderr and the documented exit codes (see errors.py)."""
    # numpy's OpenBLAS starts a thread per CPU that spins after it wakes, taking CPU from classify's
    # workers (0.2-0.5 s of CPU on 50,000 messages, measured). Nothing here needs threaded BLAS: the
    # scoring and counting are sparse, in numpy or C. numpy is imported after this line.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    restore = _catch_termination()
    try:
        code = _run(argv)
    except KeyboardInterrupt:  # arrived while an error was being reported
        code = EXIT_SIGNAL_BASE + signal.SIGINT
    except _Terminated as exc:
        code = EXIT_SIGNAL_BASE + exc.signum
    finally:
        restore()
    _leave(code)


def _run(argv: list[str] | None) -> int:
    """The exit code of one run; errors are reported on stderr here."""
    try:
        code = app(args=argv, standalone_mode=False, prog_name="spamcli")
        return code if isinstance(code, int) else EXIT_OK
    except SpamcliError as exc:
        print(f"spamcli: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (BrokenPipeError, _StdoutClosed):
        _quiet_broken_pipe()
        return EXIT_OK
    except (KeyboardInterrupt, typer.Abort):
        return EXIT_SIGNAL_BASE + signal.SIGINT
    except _Terminated as exc:
        return EXIT_SIGNAL_BASE + exc.signum
    except OSError as exc:
        print(f"spamcli: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except Exception as exc:
        if _click_error(exc):
            if type(exc).__name__ == "NoArgsIsHelpError":
                print(exc.format_message(), file=sys.stderr)
                return EXIT_USAGE
            ctx = getattr(exc, "ctx", None)
            hint = f" (see 'spamcli {ctx.info_name} --help')" if ctx is not None and ctx.parent else ""
            print(f"spamcli: error: {exc.format_message()}{hint}", file=sys.stderr)
            return EXIT_USAGE if exc.exit_code == 2 else exc.exit_code
        if os.environ.get("SPAMCLI_DEBUG"):
            raise
        print(
            f"spamcli: internal error: {type(exc).__name__}: {exc} (set SPAMCLI_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return EXIT_BUG
