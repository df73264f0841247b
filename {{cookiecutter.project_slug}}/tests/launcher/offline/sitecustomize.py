"""Loaded by every Python child of the launcher tests (PYTHONPATH points here): see offline_aws.py."""

import os

if os.environ.get("LAUNCHER_TEST_GUARD_LOG"):
    import offline_aws

    offline_aws.install(os.environ["LAUNCHER_TEST_GUARD_LOG"], os.environ.get("LAUNCHER_TEST_CAPTURE"))
