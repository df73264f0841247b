"""Fixtures of the SB3 suite (the bench venv: torch + stable-baselines3 on top of the training set)."""

from aws_fixtures import *  # noqa: F401,F403
from sim_fixtures import *  # noqa: F401,F403
