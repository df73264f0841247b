"""Fixtures of the runtime suite: a loopback moto server and the simulated Unity build (tests/support/)."""

from aws_fixtures import *  # noqa: F401,F403
from sim_fixtures import *  # noqa: F401,F403
