"""claimbench harness: device, seeding, profiles, training, statistics, result store, report.

Data flows one way: fixtures -> harness.train -> harness.stats -> harness.store -> harness.report.
The report is rebuilt from the store alone (``python -m harness.report``), never from live tests.
"""
