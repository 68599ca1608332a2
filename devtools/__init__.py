"""Demo and development tools: the simulated annotator team, the traffic generator, the demo runner, pages with
known text, and the supervisors of the local services of the embedded default (Label Studio, the Prefect
server). The CLI, the tests and the benchmarks use them; no production package does (tests/test_layers.py)."""
