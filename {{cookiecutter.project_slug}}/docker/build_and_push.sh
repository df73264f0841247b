#!/usr/bin/env bash
# Build the training image and push it to the image URI in project.toml ([aws] ecr_image_uri):
# docker/build.sh, then docker/push.sh, after checking everything both need (make image).
#
#   bash docker/build_and_push.sh              # CPU image -> ecr_image_uri
#   bash docker/build_and_push.sh --gpu        # GPU image -> the same repository, tag <tag>-gpu
#   bash docker/build_and_push.sh --dry-run    # print the commands; needs neither docker nor AWS
#
# It takes build.sh's options too (--base, --ca-certificates, --install-ca-certificates, -- ARGS).
# Rebuild after any change under requirements/ or docker/: the image holds the packages, while src/
# is uploaded with every job. Needs docker (with a running daemon, BuildKit), the AWS CLI and
# credentials for the account in the URI; the ECR repository is created when missing. To build with
# no AWS account at all: make image-build (docker/build.sh).
set -euo pipefail

SCRIPT_NAME=build_and_push.sh
# shellcheck source=SCRIPTDIR/lib.sh
source "${BASH_SOURCE[0]%/*}/lib.sh"
readonly USAGE="usage: bash docker/build_and_push.sh [--gpu] [--base IMAGE] [--ca-certificates PATH] [--install-ca-certificates] [--dry-run] [-- DOCKER_BUILD_ARGS...]"

parse_arguments() {
    while [[ $# -gt 0 ]]; do
        build_option "$@"
        if [[ "$OPTION_WORDS" -gt 0 ]]; then
            shift "$OPTION_WORDS"
            continue
        fi
        case "$1" in
            --) shift; EXTRA_BUILD_ARGS=("$@"); return ;;
            -h | --help) echo "$USAGE"; exit 0 ;;
            *) die "unknown argument '$1'; $USAGE" ;;
        esac
    done
}

main() {
    parse_arguments "$@"
    resolve_ca_certificates
    cd_to_repository_root
    local uri
    uri="$(read_image_uri)"
    parse_image_uri "$uri"
    if [[ "$DRY_RUN" == 1 ]]; then
        print_build_plan
        print_push_plan
    else
        check_or_die "build and push $IMAGE" docker_problems aws_problems
    fi
    build_image
    print_image_size
    ensure_repository
    log_in_to_registry
    push_image
    print_next_step
}

main "$@"
