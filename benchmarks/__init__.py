"""Benchmarks of pytest-httptrace: what the plugin costs, and how its server compares.

Run them all (about fifteen minutes on a 2-core machine, half of it the valgrind
runs of ``instructions``; results go to ``benchmarks/results/*.json`` and the tables of
``docs/performance.md``)::

    .venv/bin/python -m benchmarks

One or several, or a quick smoke run (a few iterations, no thresholds, nothing written
unless ``--results`` / ``--docs`` are given; this is what CI runs)::

    .venv/bin/python -m benchmarks overhead cold
    .venv/bin/python -m benchmarks --quick

Each benchmark runs in a fresh process (``python -m benchmarks.<name> --out FILE``):

- ``overhead``: 1000 keep-alive TLS GETs per variant, server in another process,
  client processes with no plugin / plugin idle / one hook set / every hook recording,
  and two anchors: httpcore's no-op ``trace`` extension and OpenTelemetry's httpx
  instrumentation (`overhead`); ``overhead-httpx2`` the same on httpx2.
- ``cold``: first request on a new connection (DNS + TCP + TLS), traced vs untraced.
- ``startup``: ``-X importtime`` of the plugin after pytest, and ``pytest
  --collect-only`` of a generated 200-test suite with and without the plugin.
- ``servers``: our test server vs pytest-httpserver vs a hand-written trustme +
  uvicorn fixture: start+stop, first request, keep-alive request, requests/s.
- ``scale``: memory per recorded request, and the time of `assert_hook_sequence` and
  of the leak check over 1k / 10k / 100k events.
- ``aiohttp_overhead``, ``requests_overhead``: the recording overhead of the other
  sources, with their own anchors.
- ``instructions`` (``instructions-httpx2``): client instructions per request under
  valgrind, layer by layer (as shipped, httpcore's no-op trace, installed, empty
  trace, one hook, recording; cold first requests; a recorder's start and stop):
  exact where times are noisy.

And, not part of the default run: ``python -m benchmarks.compare REV`` measures the
recording overhead of this checkout against commit REV's package, in one run.

Every comparison is measured in one run, interleaved (variants take turns, in rotated
order), and reported as medians with their spread; ratios compare figures of the same
run, since absolute times on a shared machine drift.

This package imports nothing from ``pytest_httptrace`` at import time: the client
processes of the "no plugin" variant import it (``benchmarks._overhead_worker``) and
must not load the plugin by accident.
"""
