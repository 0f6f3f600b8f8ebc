"""The ``spamcli`` command: a thin layer that turns options into library calls.

Data goes to stdout, everything else (progress, summaries, warnings, errors) to stderr. Errors are
one line, ``spamcli: error: ...``, with the exit codes of :mod:`spamcli.errors`.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from . import __version__, render
from .errors import UsageError
from .process import StdoutClosed, exit_code_of, run_command

app = typer.Typer(
    name="spamcli",
    help="Spam classifier for online communities: language-routed Naive Bayes, calibrated and explainable.",
    epilog="Example:  echo 'WIN a FREE iPhone at http://x.example' | spamcli classify",
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # docstrings are wrapped to the terminal: their single line breaks are not kept
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
    fields = {"text_field": text_col, "label_field": label_col, "lang_field": lang_col or None}
    return ReadOptions(format=fmt, need_label=need_label, max_bytes=max_bytes, **fields)


FpBudgetOpt = Annotated[
    float | None,
    typer.Option(
        "--max-fpr",
        help="Label spam at the threshold chosen in training for this held-out false-positive rate: "
        "0.005, 0.01, 0.02, 0.03 or 0.05 (default: the model's own; 0.005 for the shipped model).",
    ),
]


# A moderation export's columns (train, learn): see spamcli.moderation.
HiddenColOpt = Annotated[
    str | None, typer.Option(help="Moderation export: a true value here (e.g. hidden_at set) means spam.")
]
BlockedColOpt = Annotated[str | None, typer.Option(help="Moderation export: a true value here means spam.")]
LabelRuleOpt = Annotated[
    str | None, typer.Option(help="Moderation export: spam when this rule holds, e.g. \"hidden_at != ''\".")
]
ReviewedColOpt = Annotated[
    str | None, typer.Option(help="Moderation export: reviewed-and-kept (ham) when true (default: auto).")
]
HamRuleOpt = Annotated[str | None, typer.Option(help="Moderation export: ham when this rule holds.")]


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
    from .batch import JsonLinesSink, open_sink, parse_only
    from .classifying import classify_inputs, load_scorer, write_classified

    if jobs < 0:
        raise UsageError("--jobs must be 0 (one per CPU) or more")
    if batch_size < 1:
        raise UsageError("--batch-size must be 1 or more")
    wanted = parse_only(only)
    opts = _read_options(fmt, text_col, None, lang_col, need_label=False, max_bytes=max_bytes)
    opts.id_field = id_col
    opts.allow_empty_text = context == "profile"
    thresholds = (ham_threshold, spam_threshold, max_fpr)
    scorer = load_scorer(model, context, *thresholds, trusted_domains, trusted_ids, scoring, engine)
    explained = top if explain else 0
    sources = classify_inputs(scorer, inputs or ["-"], opts, explained, batch_size, jobs, engine, scheduler)
    sink = open_sink(output, csv_raw=csv_raw) if output else JsonLinesSink(sys.stdout)
    show_progress = sys.stderr.isatty() if progress is None else progress
    try:
        with render.progress_bar(render.stderr()) if show_progress else contextlib.nullcontext() as advance:
            counts = write_classified(sources, sink, wanted, advance)
    except BrokenPipeError:  # stdout's reader went away (| head): not click's exit 1, see main()
        raise StdoutClosed() from None
    if output or wanted or show_progress:
        kept = f"; {', '.join(sorted(wanted))} written" if wanted else ""
        render.stderr().print(f"{counts.summary()}{kept}" + (f" to {output}" if output else ""), markup=False)
    counts.check()


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
    hidden_col: HiddenColOpt = None,
    blocked_col: BlockedColOpt = None,
    label_rule: LabelRuleOpt = None,
    reviewed_col: ReviewedColOpt = None,
    ham_rule: HamRuleOpt = None,
    kind: Annotated[
        str, typer.Option(help="nblr (NB-weighted logistic regression) or nb (Naive Bayes only).")
    ] = "nblr",
    out_of_core: Annotated[
        bool, typer.Option("--out-of-core", help="Stream files of any size in chunks: one NB model, no languages.")
    ] = False,
    chunk_size: Annotated[int, typer.Option(help="Records per chunk with --out-of-core.")] = 20_000,
    max_rows: Annotated[
        int,
        typer.Option(
            help="Naive Bayes counts take every record; the regression, calibration and thresholds a uniform "
            "random sample of at most this many (0: all of them, about 3.5 KB of memory each)."
        ),
    ] = 200_000,
    engine: EngineOpt = "local",
    scheduler: SchedulerOpt = None,
) -> None:
    """Learn a model from labeled data and write it atomically to --out.

    Labels: spam/ham, 1/0, true/false; or moderators' decisions in a moderation export
    (--hidden-col, --blocked-col, --label-rule: spam; reviewed and kept: ham; others skipped).
    One Naive Bayes model per language with enough examples of both classes, plus a multilingual
    fallback; thresholds chosen on held-out folds.
    """
    from .bundle import merge_context
    from .trainer import train_from_inputs
    from .training import TrainOptions

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
        max_rows=max_rows if max_rows else None,
    )
    rules = {"hidden_col": hidden_col, "blocked_col": blocked_col, "label_rule": label_rule}  # a moderation export
    rules.update(reviewed_col=reviewed_col, ham_rule=ham_rule)
    labeled = (inputs or [], spam or [], ham or [], _read_options(fmt, text_col, label_col, lang_col, need_label=True))
    console = render.stderr()
    with render.status(console, "training") as progress:
        result = train_from_inputs(*labeled, train_opts, rules, out_of_core, chunk_size, engine, scheduler, progress)
    if result.moderation is not None:
        render.moderation_counts(console, result.moderation)
    merge_context(out, result.context, warn=lambda message: render.warning(console, message))
    render.train_report(console, result.report, out)
    if json_summary:
        print(json.dumps(result.report.to_dict(), indent=2))


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
    from .evaluation import evaluate_inputs

    opts = _read_options(fmt, text_col, label_col, lang_col, need_label=True)
    thresholds = (ham_threshold, spam_threshold, max_fpr)
    with render.status(render.stderr(), "cross-validating", enabled=bool(cv)) as progress:
        result = evaluate_inputs(inputs, opts, model, context, cv, target_precision, errors, *thresholds, progress)
    if result.learned:
        render.learned_records_warning(render.stderr(), result.learned)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        render.evaluation(render.stdout(), result)


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
    hidden_col: HiddenColOpt = None,
    blocked_col: BlockedColOpt = None,
    label_rule: LabelRuleOpt = None,
    reviewed_col: ReviewedColOpt = None,
    ham_rule: HamRuleOpt = None,
) -> None:
    """Learn or forget messages without retraining (sa-learn style).

    Each message is remembered by the sha256 of its normalised text: learning it twice does
    nothing, learning it as the other class moves it, --forget removes it exactly. What is taught
    goes to the site layer (MODEL_DIR/site.sqlite) and moves the scores of similar messages at once.
    A --model DIR that does not exist yet starts as a copy of the shipped model. Instead of
    --spam/--ham, a moderation export's decisions (--hidden-col, --blocked-col, --label-rule: spam;
    reviewed and kept: ham; others skipped); with --context profile, rows are accounts and their bios
    are taught.
    """
    from .learning import learn_from_export, learn_from_inputs

    if model is None:
        raise UsageError("learn needs --model DIR (the shipped model is read-only)")
    actions = [name for name, on in (("spam", as_spam), ("ham", as_ham), ("forget", forget)) if on]
    rules = {"hidden_col": hidden_col, "blocked_col": blocked_col, "label_rule": label_rule}
    rules.update(reviewed_col=reviewed_col, ham_rule=ham_rule)
    exported = any(rules.values())
    if len(actions) + exported != 1:
        raise UsageError("give exactly one of --spam, --ham or --forget, or a moderation export's --blocked-col etc.")
    labeler = None
    if exported:
        from .moderation import ModerationLabeler

        labeler = ModerationLabeler(**rules)
    opts = _read_options(fmt, text_col, None, "", need_label=False)
    moderation = {}
    if labeler is not None:
        report, unreadable = learn_from_export(model, inputs or ["-"], labeler, opts, context)
        moderation = {"moderation": {**labeler.counts, "skipped": labeler.skipped}}
        render.moderation_counts(render.stderr(), moderation["moderation"])
    else:
        report, unreadable = learn_from_inputs(model, inputs or ["-"], actions[0], opts, context)
    if report.created_from:
        render.created_site_model(render.stderr(), model)
    render.learn_report(render.stderr(), report, unreadable)
    if json_summary:
        print(json.dumps({**report.to_dict(), "unreadable": unreadable, **moderation}))


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
    render.model_info(render.stdout(), data)


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
    render.stderr().print(f"exported {', '.join(bundle.contexts)} to {path} ({path.stat().st_size:,} bytes)")


@app.command(
    epilog="Examples:  SPAMCLI_TOKEN=s3cret spamcli serve --model /srv/spamcli/model --workers 2\n\n"
    'curl -s localhost:8080/v1/classify -d \'{"text": "WIN a FREE iPhone"}\''
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
    from .server import ServeOptions, check_extra, read_token
    from .server import serve as run_server

    check_extra()
    options = ServeOptions(model, host, port, workers, token=read_token(token_file), max_bytes=max_bytes)
    raise typer.Exit(run_server(options))


# ---- entry point --------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    """Run the CLI; map errors to one line on stderr and the documented exit codes (see errors.py)."""
    run_command(lambda: exit_code_of(lambda: app(args=argv, standalone_mode=False, prog_name="spamcli")))
