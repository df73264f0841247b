"""Shared pytest set-up for this repository's tests.

Fixtures live in small modules beside this file, one per subject, and are
re-exported here so every test module can use them by name.
"""
from aws_fixtures import *  # noqa: F401,F403
from sim_fixtures import *  # noqa: F401,F403
