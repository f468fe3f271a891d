"""The claims suite: one test module per claim family, plus the runners two families share."""
