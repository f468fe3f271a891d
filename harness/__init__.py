"""claimbench harness: device, seeding, profiles, training, rules and decisions, result store, report.

Data flows one way: a fixture (dataset, model) -> ``harness.train`` -> a stored run (``harness.store``)
-> a decision (``harness.rulebook`` + ``harness.decide``, applied to the claim's own runs) -> the report
(``harness.report``). The report is rebuilt from the store alone (``python -m harness.report``), never from
live tests; benchmarks reach all of it through ``harness.claim``.
"""
