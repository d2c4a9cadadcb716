"""`copilot bench embeddings`' measuring loops: variants in turn, wall and CPU time each."""

from __future__ import annotations

from copilot.bench.embeddings import (
    Variant,
    _in_turn,
    latency_variants,
    measure_latency,
    measure_throughput,
    throughput_variants,
)
from copilot.knowledge.embeddings import LocalMiniLM


def test_each_variant_goes_first_in_turn() -> None:
    assert [_in_turn(3, shift) for shift in range(4)] == [
        [0, 1, 2],
        [1, 2, 0],
        [2, 0, 1],
        [0, 1, 2],
    ]


def test_the_variants_name_their_threads_spinning_and_batch() -> None:
    names = [v.name for v in throughput_variants(with_torch=False)]
    assert names[:4] == [
        "onnx 1 thread(s), spinning off, batch 32",
        "onnx 1 thread(s), spinning on, batch 32",
        "onnx 2 thread(s), spinning off, batch 32",
        "onnx 2 thread(s), spinning on, batch 32",
    ]
    assert "onnx 2 threads, spinning off, batch 128" in names
    assert [v.name for v in latency_variants(with_torch=False)][-1] == (
        "onnx 2 thread(s), spinning on"
    )


def test_throughput_and_latency_are_timed_for_every_variant(embeddings: LocalMiniLM) -> None:
    variants = [Variant("a", lambda: embeddings), Variant("b", lambda: embeddings)]
    texts = [f"Sensor {i} reported {i} degrees in hall {i % 3}." for i in range(12)]
    said: list[str] = []
    throughput = measure_throughput(variants, texts, per_call=4, rounds=2, say=said.append)
    assert [t.variant for t in throughput] == ["a", "b"]
    for figures in throughput:
        assert figures.chunks == 24 and figures.seconds > 0
        # seconds are printed to 0.01 s and the rate to 0.1 chunk/s: both roundings bound it
        fastest, slowest = figures.seconds - 0.005, figures.seconds + 0.005
        assert 24 / slowest - 0.05 <= figures.chunks_per_second
        assert fastest <= 0 or figures.chunks_per_second <= 24 / fastest + 0.05
        assert figures.cpu_ms_per_chunk > 0
    latency = measure_latency(variants, ["Where is hall 2?"] * 5, None, said.append)
    assert [(q.variant, q.condition, q.questions) for q in latency] == [
        ("a", "quiet", 5),
        ("b", "quiet", 5),
    ]
    assert all(0 < q.p50_ms <= q.p95_ms and q.cpu_ms is not None for q in latency)
    assert said == [
        "throughput round 1/2 done",
        "throughput round 2/2 done",
        "latency (quiet) done",
    ]
