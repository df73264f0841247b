#!/usr/bin/env bash
# Push the image docker/build.sh built to the image URI in project.toml ([aws] ecr_image_uri): the
# same value launch.py and job_launcher.ipynb start training jobs with, so a push is all they need.
#
#   bash docker/push.sh              # <repository>:<tag> -> ecr_image_uri
#   bash docker/push.sh --gpu        # <repository>:<tag>-gpu -> the same repository, tag <tag>-gpu
#   bash docker/push.sh --dry-run    # print the commands; needs neither docker nor AWS
#
# Needs docker, the AWS CLI and credentials for the account in the URI; the ECR repository is
# created when missing.
set -euo pipefail

SCRIPT_NAME=push.sh
# shellcheck source=SCRIPTDIR/lib.sh
source "${BASH_SOURCE[0]%/*}/lib.sh"
readonly USAGE="usage: bash docker/push.sh [--gpu] [--dry-run]"

parse_arguments() {
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --gpu) VARIANT=gpu ;;
            --dry-run) DRY_RUN=1 ;;
            -h | --help) echo "$USAGE"; exit 0 ;;
            *) die "unknown argument '$1'; $USAGE" ;;
        esac
        shift
    done
}

main() {
    parse_arguments "$@"
    cd_to_repository_root
    local uri
    uri="$(read_image_uri)"
    parse_image_uri "$uri"
    if [[ "$DRY_RUN" == 1 ]]; then
        print_push_plan
    else
        check_or_die "push $IMAGE" docker_problems aws_problems
        "$DOCKER" image inspect "$LOCAL_TAG" >/dev/null 2>&1 \
            || die "no local image $LOCAL_TAG to push: build it first (make image-build, or bash docker/build.sh$([[ "$VARIANT" == gpu ]] && echo ' --gpu'))"
    fi
    ensure_repository
    log_in_to_registry
    push_image
    print_next_step
}

main "$@"
