"""`copilot bench`: speed and quality figures measured in one run (never timed tests)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from copilot.bench.datasets import DatasetError, default_covidqa_path, load_beir, load_squad
from copilot.cli.common import fail, run, settings_of
from copilot.cli.tables import Column, echo_table

app = typer.Typer(help="Benchmarks: figures and ratios measured in one run.", no_args_is_help=True)


def printed_as_json(report: Any, as_json: bool) -> bool:
    """With --json, print the report's figures as JSON (and nothing else)."""
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    return as_json


def progress_printer(as_json: bool) -> Callable[[str], None]:
    """Progress lines as a bench runs; on stderr with --json, so stdout stays pure JSON."""

    def say(line: str) -> None:
        print(line, file=sys.stderr if as_json else sys.stdout, flush=True)

    return say


@app.command()
def retrieval(
    ctx: typer.Context,
    squad: Annotated[Path | None, typer.Option(help="A SQuAD-format JSON file.")] = None,
    beir: Annotated[
        Path | None, typer.Option(help="A BEIR folder (corpus, queries, qrels).")
    ] = None,
    queries: Annotated[int | None, typer.Option(help="Evaluate a sample of N queries.")] = None,
    scale: Annotated[
        int | None, typer.Option(help="Replicate the corpus to N chunks and time queries there.")
    ] = None,
    sweep: Annotated[
        bool,
        typer.Option(
            help="Also print every fusion setting (RRF weights x c, convex min-max and z-score"
            " weights) re-scored on this run's rankings."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Keyword vs vector vs ensemble: nDCG@10, MRR@10, Recall@k, latency, ingestion rate.

    Default dataset: COVID-QA from ../shared/data/covidqa/covidqa.json. Chunk size and the
    ensemble's fusion come from the settings (COPILOT_CHUNK_SIZE, COPILOT_FUSION, ...).
    """
    from copilot.bench.retrieval import READING_BUDGET, run_retrieval_bench

    if squad and beir:
        fail("give --squad or --beir, not both")
    try:
        dataset = (
            load_beir(beir)
            if beir
            else load_squad(squad or default_covidqa_path(), "COVID-QA" if squad is None else None)
        )
    except (DatasetError, FileNotFoundError) as error:
        fail(str(error))

    say = progress_printer(as_json)
    report = run(
        run_retrieval_bench(settings_of(ctx), dataset, max_queries=queries, scale=scale, say=say)
    )
    if printed_as_json(report, as_json):
        return
    typer.echo(
        f"\n{report.dataset}: {report.documents} documents, {report.chunks} chunks "
        f"({report.chunk_size} tokens, overlap {report.chunk_overlap}), {report.queries} queries"
    )
    echo_table(
        [
            Column.left("retriever", 10),
            Column("nDCG@10", 9, ".3f"),
            Column("MRR@10", 8, ".3f"),
            *(Column(title, 7, ".3f") for title in ("R@1", "R@5", "R@10", "R@50", "R@5kc")),
            Column("p50 ms", 9, ".1f"),
            Column("p95 ms", 9, ".1f"),
        ],
        (
            (
                r.name,
                r.metrics.ndcg_at_10,
                r.metrics.mrr_at_10,
                r.metrics.recall_at_1,
                r.metrics.recall_at_5,
                r.metrics.recall_at_10,
                r.metrics.recall_at_50,
                r.recall_within_budget,
                r.latency_p50_ms,
                r.latency_p95_ms,
            )
            for r in report.retrievers
        ),
    )
    best_single = max(r.metrics.ndcg_at_10 for r in report.retrievers if r.name != "ensemble")
    ensemble = next(r for r in report.retrievers if r.name == "ensemble")
    typer.echo(
        f"R@5kc: answer reached within {READING_BUDGET:,} characters of ranked text (chunks "
        f"average {report.mean_chunk_characters:.0f}); compares chunk sizes fairly"
    )
    typer.echo(f"ensemble nDCG@10 - best single: {ensemble.metrics.ndcg_at_10 - best_single:+.3f}")
    typer.echo(
        "question vectors from the cache (emptied before each pass): "
        + ", ".join(f"{r.name} {r.query_cache_hits}" for r in report.retrievers)
    )
    if report.skipped_documents:
        typer.echo(
            f"skipped {len(report.skipped_documents)} document(s) the pipeline refused "
            "(their questions count as missed):"
        )
        for skipped in report.skipped_documents[:10]:
            typer.echo(f"  {skipped.doc_id}: {skipped.reason}")
    if sweep:
        echo_table(
            [
                Column.left("fusion", 30),
                Column("nDCG@10", 9, ".3f"),
                Column("MRR@10", 8, ".3f"),
                Column("R@10", 7, ".3f"),
                Column("half A", 8, ".3f"),
                Column("half B", 8, ".3f"),
            ],
            (
                (
                    f.setting.label,
                    f.metrics.ndcg_at_10,
                    f.metrics.mrr_at_10,
                    f.metrics.recall_at_10,
                    f.ndcg_at_10_half_a,
                    f.ndcg_at_10_half_b,
                )
                for f in report.fusion
            ),
        )
    if report.fusion_choice:
        choice = report.fusion_choice
        typer.echo(
            f"fusion chosen on half A of {len(report.fusion)} settings: {choice.setting.label}"
            f" (nDCG@10 half A {choice.ndcg_at_10_half_a:.3f}); on held-out half B "
            f"{choice.ndcg_at_10_half_b:.3f} against keyword {choice.keyword_ndcg_at_10_half_b:.3f}"
            f", vector {choice.vector_ndcg_at_10_half_b:.3f}"
        )
    typer.echo(
        f"ingestion: {report.ingest_chunks_per_second:.1f} chunks/s; raw embedding "
        f"{report.raw_embedding_chunks_per_second:.1f} chunks/s; ratio "
        f"{report.ingest_to_embedding_ratio:.2f}"
    )
    if report.ingest_stage_seconds:
        typer.echo(
            "ingestion stages, seconds worked (they overlap): "
            + ", ".join(f"{k} {v:.1f}" for k, v in report.ingest_stage_seconds.items())
        )
    if report.query_cache:
        q = report.query_cache
        typer.echo(
            f"query cache, {q.questions} questions asked {q.rounds} times: hit rate "
            f"{q.hit_rate:.2f}; without the cache p50 {q.uncached_p50_ms:.1f} / p95 "
            f"{q.uncached_p95_ms:.1f} / mean {q.uncached_mean_ms:.1f} ms, with it p50 "
            f"{q.cached_p50_ms:.1f} / p95 {q.cached_p95_ms:.1f} / mean {q.cached_mean_ms:.1f} ms "
            f"(hits alone p50 {q.hit_p50_ms:.2f} ms); mean ratio {q.speedup:.1f}x; hits identical "
            f"to the uncached ranking: {q.identical_results:.0%}"
        )
    else:
        typer.echo("query cache: off (COPILOT_QUERY_CACHE=false)")
    if report.scale:
        s = report.scale
        typer.echo(
            f"at {s.chunks} chunks ({s.queries} queries): "
            + ", ".join(
                f"{name} p50 {s.latency_p50_ms[name]:.1f} / p95 {s.latency_p95_ms[name]:.1f} ms"
                for name in s.latency_p50_ms
            )
        )


@app.command()
def embeddings(
    ctx: typer.Context,
    chunks: Annotated[int, typer.Option(help="COVID-QA chunks embedded per round.")] = 256,
    rounds: Annotated[int, typer.Option(help="Rounds of every throughput variant.")] = 3,
    questions: Annotated[int, typer.Option(help="Questions timed per variant.")] = 60,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """torch vs ONNX, and ONNX Runtime's threads, spinning and batch sizes, interleaved in one
    process: chunks/s, and one question's latency (quiet and while ingesting)."""
    from copilot.bench.embeddings import run_embeddings_bench

    try:
        dataset = load_squad(default_covidqa_path(), "COVID-QA")
    except (DatasetError, FileNotFoundError) as error:
        fail(str(error))
    report = run_embeddings_bench(
        settings_of(ctx),
        dataset,
        chunks=chunks,
        rounds=rounds,
        questions=questions,
        say=progress_printer(as_json),
    )
    if printed_as_json(report, as_json):
        return
    typer.echo(
        f"\n{report.throughput[0].chunks} chunks each ({report.mean_chunk_tokens:.0f} tokens on "
        f"average, {report.chunks_per_call} a call)"
    )
    for t in report.throughput:
        typer.echo(
            f"{t.variant:<52}{t.chunks_per_second:>8.1f} chunks/s{t.cpu_ms_per_chunk:>8.1f} ms CPU"
        )
    for q in report.latency:
        cpu = "" if q.cpu_ms is None else f"{q.cpu_ms:>8.1f} ms CPU"
        typer.echo(
            f"{q.condition:<16}{q.variant:<34}p50 {q.p50_ms:>7.1f} ms  p95 {q.p95_ms:>7.1f} ms{cpu}"
        )


@app.command()
def ingest(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="Files to ingest, each alone.")],
    raw_sample: Annotated[
        int, typer.Option(min=1, help="Chunks of each file embedded again by the model alone.")
    ] = 512,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Ingestion speed: pages/s, chunks/s, seconds per stage, pipeline / raw embedding.

    Each file goes through the product's pipeline into a scratch knowledge base; then the
    embedding model alone embeds the same chunk texts in batches of the same size.
    """
    from copilot.bench.ingest import STAGES, run_ingest_bench

    missing = [str(path) for path in files if not path.is_file()]
    if missing:
        fail(f"no such file: {', '.join(missing)}")
    say = progress_printer(as_json)
    report = run(run_ingest_bench(settings_of(ctx), files, raw_sample=raw_sample, say=say))
    if printed_as_json(report, as_json):
        return
    typer.echo(
        f"\n{report.embedding_model}, batches of {report.batch_size}, {report.cpus} CPUs, "
        f"load average {report.load_average_before} before"
    )
    echo_table(
        [
            Column.left("file", 32),
            Column("pages", 6),
            Column("chunks", 7),
            Column("s", 8, ".1f"),
            Column("pages/s", 8, ".1f"),
            Column("chunks/s", 9, ".1f"),
            Column("raw/s", 8, ".1f"),
            Column("ratio", 7, ".2f"),
            Column("embed share", 12, ".2f"),
        ],
        (
            (
                f.name[:31],
                f.pages or "-",
                f.chunks,
                f.seconds,
                f.pages_per_second or "-",
                f.chunks_per_second,
                f.raw_chunks_per_second,
                f.pipeline_to_raw,
                f.embedding_share,
            )
            for f in report.files
        ),
    )
    typer.echo("seconds each stage worked (stages overlap; language detection is in chunk):")
    echo_table(
        [
            Column.left("file", 32),
            *(Column(stage, 9, ".1f") for stage in STAGES),
            Column("language", 9, ".1f"),
        ],
        (
            (f.name[:31], *(f.stage_seconds[stage] for stage in STAGES), f.language_seconds)
            for f in report.files
        ),
    )
    for f in report.files:
        if f.outcome != "indexed":
            typer.echo(f"{f.name}: {f.outcome}: {f.error}")
    if any(f.outcome == "failed" for f in report.files):
        raise typer.Exit(1)


@app.command()
def answer(
    ctx: typer.Context,
    squad: Annotated[Path | None, typer.Option(help="A SQuAD-format JSON file.")] = None,
    queries: Annotated[
        int | None,
        typer.Option(help="Ask a sample of N answerable (and at most N unanswerable) questions."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the samples and of the held-out set.")] = 7,
    holdout_fraction: Annotated[
        float, typer.Option(help="Share of documents left out: their questions are unanswerable.")
    ] = 0.1,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """The chat's answers against gold answers: contained, F1, gold chunk cited, not found.

    Runs the chat's own chain (configured provider; extractive by default) over COVID-QA
    (../shared/data/covidqa/covidqa.json) or --squad FILE. Unanswerable questions are those
    of a fixed-seed share of documents left out of the ingested corpus.
    """
    from copilot.answer.providers import ModelNotConfigured
    from copilot.bench.answer import run_answer_bench

    try:
        dataset = load_squad(squad or default_covidqa_path(), "COVID-QA" if squad is None else None)
    except (DatasetError, FileNotFoundError) as error:
        fail(str(error))
    if not 0 <= holdout_fraction < 1:
        fail(f"--holdout-fraction must be at least 0 and below 1, got {holdout_fraction}")
    say = progress_printer(as_json)
    try:
        report = run(
            run_answer_bench(
                settings_of(ctx),
                dataset,
                max_queries=queries,
                seed=seed,
                holdout_fraction=holdout_fraction,
                say=say,
            )
        )
    except ModelNotConfigured as error:
        fail(str(error))
    if printed_as_json(report, as_json):
        return
    typer.echo(
        f"\n{report.dataset}: {report.documents} documents ingested ({report.chunks} chunks),"
        f" {report.held_out_documents} held out; {report.answerable} answerable questions,"
        f" {report.unanswerable} unanswerable (questions of the held-out documents)"
    )
    echo_table(
        [
            Column.left("model", 12),
            Column("gold in", 8, ".3f"),
            Column("F1", 7, ".3f"),
            Column("cited", 7, ".3f"),
            Column("wrong NF", 9, ".3f"),
            Column("NF unans", 9, ".3f"),
            Column("chars", 7, ".0f"),
            Column("median", 7, ".0f"),
            *(Column(title, 9, ".1f") for title in ("p50 ms", "p95 ms", "1st p50", "1st p95")),
        ],
        [
            (
                report.model,
                report.gold_contained,
                report.mean_f1,
                report.gold_chunk_cited,
                report.wrongly_not_found,
                report.not_found_on_unanswerable,
                report.mean_answer_characters,
                report.median_answer_characters,
                report.latency_p50_ms,
                report.latency_p95_ms,
                report.first_token_p50_ms,
                report.first_token_p95_ms,
            )
        ],
    )
    typer.echo(
        "gold in: answer contains a gold answer (SQuAD-normalised); F1: SQuAD token F1; cited:"
        " a cited chunk holds the gold answer; wrong NF: answerable answered not found;"
        " NF unans: unanswerable answered not found; chars: mean / median answer length"
        " (answered answerable questions); 1st: ms to the first streamed piece of the answer"
    )


@app.command()
def chat(
    ctx: typer.Context,
    users: Annotated[int, typer.Option(min=1, help="Simulated users chatting at once.")] = 50,
    messages: Annotated[int, typer.Option(min=1, help="Questions each user asks in turn.")] = 5,
    think: Annotated[
        float,
        typer.Option(
            min=0, help="Mean seconds a user reads an answer before asking again (0: at once)."
        ),
    ] = 0.0,
    ingest: Annotated[
        list[Path] | None,
        typer.Option(
            help="Measure again while this file is ingested as a chat upload is (repeatable)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Chat overhead under load: time to first token and answer latency, p50/p95.

    Runs the real app (sign-in, sessions, limits, retrieval, persistence, socket.io) on a
    scratch data dir with a fake model that streams a fixed answer instantly: the figures
    are the app's overhead, not a model's speed. Target: p95 TTFT <= 150 ms at 50 chats.
    With --ingest, the same load runs again while the app's ingestion queue ingests the
    files (round after round, so it covers the whole load), and both are printed.
    """
    from copilot.bench.chat import ChatBenchReport, run_chat_bench

    missing = [str(path) for path in ingest or () if not path.is_file()]
    if missing:
        fail(f"no such file: {', '.join(missing)}")
    say = progress_printer(as_json)
    report = run(
        run_chat_bench(
            settings_of(ctx),
            users=users,
            messages=messages,
            think_seconds=think,
            ingest=ingest or (),
            say=say,
        )
    )
    if printed_as_json(report, as_json):
        return
    typer.echo(
        f"\n{report.users} users x {report.messages_per_user} messages = {report.messages} "
        f"questions in {report.seconds:.1f} s, think time {report.think_seconds:g} s "
        f"({report.note})"
    )
    runs: list[tuple[str, ChatBenchReport]] = [("chat alone", report)]
    if report.while_ingesting is not None:
        runs.append(("while ingesting", report.while_ingesting))
    echo_table(
        [
            Column.left("", 18),
            *(Column(title, 9, ".1f") for title in ("1st p50", "1st p95", "ans p50", "ans p95")),
            Column("msg/s", 7, ".1f"),
            Column("errors", 7),
            Column("load", 6, ".2f"),
        ],
        (
            (
                name,
                r.ttft_p50_ms,
                r.ttft_p95_ms,
                r.answer_p50_ms,
                r.answer_p95_ms,
                r.messages_per_second,
                r.errors,
                r.load_average_before,
            )
            for name, r in runs
        ),
    )
    typer.echo(
        f"(ms; 1st: time to first token; load: load average before; {report.cpus} CPUs; "
        f"{report.frames_per_answer:.0f} streamed frames per answer)"
    )
    if report.ratios():
        typer.echo(
            "while ingesting / alone: "
            + ", ".join(f"{name} {ratio:.2f}" for name, ratio in report.ratios().items())
        )
    if report.ingestion is not None:
        i = report.ingestion
        typer.echo(
            f"ingestion of {', '.join(i.files)}: alone {i.alone.chunks} chunks in "
            f"{i.alone.seconds:.1f} s = {i.chunks_per_second_alone:.1f} chunks/s; under the "
            f"chat load {len(i.rounds)} round(s), {sum(r.chunks for r in i.rounds)} chunks in "
            f"{sum(r.seconds for r in i.rounds):.1f} s = {i.chunks_per_second_under_load:.1f} "
            f"chunks/s ({i.rounds_share_under_load:.0%} of it beside the chats)"
        )
        typer.echo(f"overlap: an ingestion ran during {i.overlap:.0%} of the chat load")
    for r in (r for _, r in runs):
        for example in r.error_examples:
            typer.echo(f"  error: {example}")
    verdict = {True: "met", False: "NOT met", None: "not measured (fewer users than 50)"}
    condition = " while ingesting" if report.while_ingesting is not None else ""
    typer.echo(
        f"target p95 TTFT <= {report.target_ttft_p95_ms:.0f} ms at {report.target_users} "
        f"concurrent chats{condition}: {verdict[report.target_met]}"
    )


@app.command()
def admin(
    ctx: typer.Context,
    users: Annotated[int, typer.Option(min=5, help="Synthetic users (50 chats each).")] = 2000,
    chats_per_user: Annotated[int, typer.Option(min=1, help="Chats per user (10 messages).")] = 50,
    runs: Annotated[int, typer.Option(min=1, help="Timed runs per listing.")] = 20,
    keep: Annotated[bool, typer.Option(help="Keep the scratch database afterwards.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """The admin's conversation list and CSV export on 1M messages in PostgreSQL.

    Creates a scratch database on the configured PostgreSQL server (COPILOT_DATABASE_URL),
    seeds it, times `list_conversations` under typical filters and the export, and drops
    it. Targets: list p95 <= 200 ms, export >= 20,000 messages/s.
    """
    from copilot.bench.admin import run_admin_bench

    say = progress_printer(as_json)
    try:
        report = run(
            run_admin_bench(
                settings_of(ctx),
                users=users,
                chats_per_user=chats_per_user,
                runs=runs,
                keep=keep,
                say=say,
            )
        )
    except ValueError as error:
        fail(str(error))
    if printed_as_json(report, as_json):
        return
    typer.echo(
        f"\n{report.messages:,} messages in {report.chats:,} chats of {report.users:,} users "
        f"(seeded in {report.seed_seconds:.0f} s)"
    )
    echo_table(
        [
            Column.left("conversation list", 28),
            Column.left("reach", 18),
            Column("rows", 5),
            Column("p50 ms", 9, ".1f"),
            Column("p95 ms", 9, ".1f"),
        ],
        ((t.name, t.reach, t.rows, t.p50_ms, t.p95_ms) for t in report.listings),
    )
    typer.echo(
        f"export (CSV, {report.export_filter}): {report.export_messages:,} messages, "
        f"{report.export_bytes / 1e6:.1f} MB in {report.export_seconds:.1f} s = "
        f"{report.export_per_second:,.0f} messages/s"
    )
    for target, met in report.targets.items():
        typer.echo(f"target {target}: {'met' if met else 'NOT met'}")


@app.command()
def startup(
    ingest: Annotated[
        list[Path] | None,
        typer.Option(help="Files or folders to ingest before the restart (repeatable)."),
    ] = None,
    squad: Annotated[
        Path | None,
        typer.Option(help="Ingest the documents of a SQuAD-format JSON file before the restart."),
    ] = None,
    covidqa: Annotated[
        bool, typer.Option(help="Ingest COVID-QA (../shared/data/covidqa) before the restart.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """`copilot serve`'s time to ready (/healthz ok) and its idle memory (RSS).

    Runs setup, serve on the fresh data dir, an optional ingest, and serve again on the
    existing data, each as a user runs it, on a scratch data dir with embedded engines.
    Targets: ready <= 5 s after setup; RSS <= 600 MB after ingesting COVID-QA.
    """
    from copilot.bench.startup import run_startup_bench

    say = progress_printer(as_json)
    documents = None
    if covidqa:
        try:
            squad = default_covidqa_path()
        except FileNotFoundError as error:
            fail(str(error))
    if squad is not None:
        try:
            dataset = load_squad(squad)
        except DatasetError as error:
            fail(str(error))
        documents = {d.title or d.doc_id: d.text for d in dataset.documents}
    try:
        report = run_startup_bench(ingest=ingest, documents=documents, say=say)
    except RuntimeError as error:
        fail(str(error))
    if printed_as_json(report, as_json):
        return
    typer.echo(
        f"\nsetup {report.setup_seconds:.1f} s; machine: {report.cpus} CPUs, "
        f"load average {report.load_average_before} before"
    )
    if report.ingested:
        typer.echo(f"ingested {report.ingested} in {report.ingest_seconds:.0f} s")
    typer.echo(f"{'copilot serve':<26}{'ready s':>9}{'RSS MB':>9}{'redis MB':>10}")
    for name, figures in (
        ("fresh data dir", report.fresh),
        ("restart on the data", report.restart),
    ):
        redis = f"{figures.redis_rss_mb:.0f}" if figures.redis_rss_mb is not None else "-"
        typer.echo(f"{name:<26}{figures.ready_seconds:>9.1f}{figures.rss_mb:>9.0f}{redis:>10}")
        if figures.app_log:
            typer.echo(f"  {figures.app_log}")
        for survivor in figures.survivors:
            typer.echo(f"  left running after SIGTERM: {survivor}")
    for target, met in report.targets.items():
        typer.echo(f"target {target}: {'met' if met else 'NOT met'}")
