"""The code behind launch.py and job_launcher.ipynb: from this repository to a SageMaker training job.

One module per job: ``project`` reads project.toml, ``entry_points`` reads a training script's config
keys without importing it, ``settings`` holds and checks what the user chose, ``job`` turns that into
one neutral description of the training job, ``sdk_v3`` / ``sdk_v2`` hand the description to the
installed SageMaker SDK, ``capture`` records (or holds back) the CreateTrainingJob request,
``aws`` makes the checks that need AWS and uploads the build, ``container`` runs a job here the
way the training container would, ``results`` fetches and plots what a job left in S3, ``api``
ties them together for the notebook and ``cli`` for the command line. ``warm_pools`` and
``live_tensorboard`` add to a training job; ``tuning`` (with ``tuning_ranges``, ``tuner_v3`` /
``tuner_v2``, ``local_tuning``, ``tuning_results`` and ``cli_tuning``) runs many jobs at once as a
SageMaker hyperparameter tuning job.

Nothing here imports TensorFlow or mlagents: the launcher runs in its own environment
(requirements/launcher.txt), the training code in another (requirements/training.txt).
"""
