"""The prompts themselves: labels for every question, choices that SageMaker really offers."""

from __future__ import annotations

import json

import botocore.session
from conftest import REGIONS, TEMPLATE_OPTIONS


def test_every_question_has_a_human_prompt():
    questions = {key for key in TEMPLATE_OPTIONS if not key.startswith("_")}
    prompts = TEMPLATE_OPTIONS["__prompts__"]

    assert questions == prompts.keys()
    for choice_question in ("aws_region", "algorithm"):
        labels = prompts[choice_question]
        assert set(TEMPLATE_OPTIONS[choice_question]) | {"__prompt__"} == labels.keys()


def test_defaults_come_first_in_the_choice_lists():
    assert TEMPLATE_OPTIONS["aws_region"][0] == "us-east-1"
    assert TEMPLATE_OPTIONS["algorithm"][0] == "ppo"


def test_every_region_offered_runs_sagemaker():
    session = botocore.session.get_session()
    sagemaker_regions = set()
    for partition in ("aws", "aws-cn", "aws-us-gov"):
        sagemaker_regions |= set(session.get_available_regions("sagemaker", partition_name=partition))

    assert set(REGIONS) <= sagemaker_regions, set(REGIONS) - sagemaker_regions


def test_default_instance_type_is_a_training_instance_type():
    model = botocore.session.get_session().get_service_model("sagemaker")
    training_types = model.shape_for("TrainingInstanceType").enum

    assert TEMPLATE_OPTIONS["instance_type"] in training_types


def test_every_question_has_its_rule_and_every_default_passes_it(baked_default):
    from conftest import rules

    questions = [key for key in TEMPLATE_OPTIONS if not key.startswith("_")]
    assert sorted(questions) == sorted(rules.ANSWER_FIELDS)
    answers = json.loads((baked_default / ".cookiecutter.json").read_text(encoding="utf-8"))
    assert rules.check_answers(answers) == ([], [])
