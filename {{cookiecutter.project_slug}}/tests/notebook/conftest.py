"""Fixtures of the notebook-tool suite (boto3 only): a loopback moto server, no internet."""

from aws_fixtures import *  # noqa: F401,F403
