#!/usr/bin/env bash
# Build the training image and push it to the image URI in project.toml ([aws] ecr_image_uri): the
# same value launch.py and job_launcher.ipynb start training jobs with, so a push is all they need.
#
#   bash docker/build_and_push.sh              # CPU image -> ecr_image_uri
#   bash docker/build_and_push.sh --gpu        # GPU image -> the same repository, tag <tag>-gpu
#   bash docker/build_and_push.sh --dry-run    # print the commands; needs neither docker nor AWS
#
# Rebuild after any change under requirements/: the image holds the packages, while src/ is uploaded
# with every job. Needs docker (with a running daemon), the AWS CLI and credentials for the account
# in the URI; the ECR repository is created when missing.
set -euo pipefail

readonly USAGE="usage: bash docker/build_and_push.sh [--gpu] [--dry-run]"
# <account>.dkr.ecr.<region>.amazonaws.com[.cn]/<repository>[:<tag>] (the template validated it).
readonly ECR_URI_PATTERN='^(([0-9]{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?)/([a-z0-9][a-z0-9._/-]*)(:([A-Za-z0-9_][A-Za-z0-9_.-]*))?$'

DRY_RUN=0
VARIANT=cpu

die() {
    printf 'build_and_push.sh: %s\n' "$1" >&2
    exit 1
}

# Every path below is relative to the repository root, wherever the script is called from.
cd_to_repository_root() {
    local script="${BASH_SOURCE[0]}" folder=.
    [[ "$script" == */* ]] && folder="${script%/*}"
    cd "$folder/.."
}

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

# project.toml is TOML: read it with Python's tomllib (3.11+) rather than guess with sed.
find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3.11 python3 python; do
        if [[ -n "$candidate" ]] && command -v "$candidate" >/dev/null 2>&1 \
            && "$candidate" -c 'import tomllib' >/dev/null 2>&1; then
            echo "$candidate"
            return
        fi
    done
    die "no Python 3.11+ found to read project.toml (tried \$PYTHON, python3.11, python3, python); install Python 3.11 or set PYTHON=/path/to/python3.11"
}

read_image_uri() {
    [[ -f project.toml ]] || die "no project.toml in $PWD: run this script inside a repository made by the unity-sagemaker-rl template"
    local python
    python="$(find_python)"
    "$python" -c '
import sys, tomllib
try:
    with open("project.toml", "rb") as file:
        uri = tomllib.load(file).get("aws", {}).get("ecr_image_uri", "")
except tomllib.TOMLDecodeError as error:
    sys.exit(f"build_and_push.sh: project.toml is not valid TOML ({error}): fix it, then run again")
if not uri:
    sys.exit("build_and_push.sh: project.toml has no [aws] ecr_image_uri: add your ECR image URI there")
print(uri)
'
}

# Splits the URI into REGISTRY ACCOUNT REGION REPOSITORY TAG (globals used by the steps below).
parse_image_uri() {
    local uri="$1"
    [[ "$uri" != *@sha256:* ]] || die "ecr_image_uri '$uri' names an image by digest, which cannot be pushed to; put a tag there instead (e.g. ':latest') in project.toml"
    [[ "$uri" =~ $ECR_URI_PATTERN ]] || die "ecr_image_uri '$uri' is not an ECR image URI (<12-digit account>.dkr.ecr.<region>.amazonaws.com/<repository>[:tag]); fix [aws] ecr_image_uri in project.toml"
    REGISTRY="${BASH_REMATCH[1]}"
    ACCOUNT="${BASH_REMATCH[2]}"
    REGION="${BASH_REMATCH[3]}"
    REPOSITORY="${BASH_REMATCH[5]}"
    TAG="${BASH_REMATCH[7]:-latest}"
    if [[ "$VARIANT" == gpu ]]; then
        TAG="$TAG-gpu"
    fi
    IMAGE="$REGISTRY/$REPOSITORY:$TAG"
}

# Without --dry-run, check everything before building, and name every missing piece at once.
check_tools_and_credentials() {
    local problems="" caller_account
    if ! command -v docker >/dev/null 2>&1; then
        problems+="  - docker is not installed (or not on PATH): install Docker, https://docs.docker.com/get-docker/"$'\n'
    elif ! docker info >/dev/null 2>&1; then
        problems+="  - the Docker daemon is not reachable ('docker info' failed): start Docker Desktop or the docker service, and check that your user may use it"$'\n'
    fi
    if ! command -v aws >/dev/null 2>&1; then
        problems+="  - the AWS CLI is not installed: install it, https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html"$'\n'
    elif ! caller_account="$(aws sts get-caller-identity --region "$REGION" --query Account --output text 2>/dev/null)"; then
        problems+="  - no usable AWS credentials ('aws sts get-caller-identity' failed): run 'aws configure' or 'aws sso login', or set AWS_PROFILE"$'\n'
    elif [[ "$caller_account" != "$ACCOUNT" ]]; then
        problems+="  - your AWS credentials are for account $caller_account but ecr_image_uri names account $ACCOUNT: put your account in [aws] ecr_image_uri in project.toml (123456789012 is the template's placeholder), or use credentials for $ACCOUNT"$'\n'
    fi
    if [[ -n "$problems" ]]; then
        printf 'build_and_push.sh: cannot build and push %s:\n%s' "$IMAGE" "$problems" >&2
        printf 'Run with --dry-run to see the commands without running them.\n' >&2
        exit 1
    fi
}

print_command() {
    local line
    printf -v line '%q ' "$@"
    printf '%s\n' "${line% }"
}

# Dry run: print the command. Otherwise: echo it to stderr (like set -x, but readable) and run it.
run() {
    if [[ "$DRY_RUN" == 1 ]]; then
        print_command "$@"
    else
        printf '+ %s\n' "$(print_command "$@")" >&2
        "$@"
    fi
}

print_plan() {
    echo "# Build the $VARIANT training image and push it to ECR (run from the repository root)"
    echo "#   image:      $IMAGE"
    echo "#   account:    $ACCOUNT"
    echo "#   region:     $REGION"
    echo "#   repository: $REPOSITORY"
    echo "#   tag:        $TAG"
}

# linux/amd64 always: SageMaker instances and Unity Linux players are x86_64 (on an Apple-silicon Mac
# docker emulates it, which is slower but gives the image the jobs need).
build_image() {
    run docker build --pull --platform linux/amd64 --file docker/Dockerfile \
        --build-arg "VARIANT=$VARIANT" --tag "$REPOSITORY:$TAG" .
}

ensure_repository() {
    local describe=(aws ecr describe-repositories --region "$REGION" --repository-names "$REPOSITORY")
    local create=(aws ecr create-repository --region "$REGION" --repository-name "$REPOSITORY")
    local error
    if [[ "$DRY_RUN" == 1 ]]; then
        echo "$(print_command "${describe[@]}") || $(print_command "${create[@]}")"
        return
    fi
    if error="$("${describe[@]}" 2>&1 >/dev/null)"; then
        return
    fi
    [[ "$error" == *RepositoryNotFoundException* ]] \
        || die "could not look up ECR repository '$REPOSITORY' in $REGION: $error"
    run "${create[@]}" >/dev/null
}

log_in_to_registry() {
    local password=(aws ecr get-login-password --region "$REGION")
    local login=(docker login --username AWS --password-stdin "$REGISTRY")
    if [[ "$DRY_RUN" == 1 ]]; then
        echo "$(print_command "${password[@]}") | $(print_command "${login[@]}")"
        return
    fi
    printf '+ %s | %s\n' "$(print_command "${password[@]}")" "$(print_command "${login[@]}")" >&2
    "${password[@]}" | "${login[@]}"
}

push_image() {
    run docker tag "$REPOSITORY:$TAG" "$IMAGE"
    run docker push "$IMAGE"
}

print_next_step() {
    if [[ "$VARIANT" == gpu ]]; then
        echo "# To train on GPUs, set [aws] ecr_image_uri = \"$IMAGE\" and a GPU instance_type (e.g. ml.g5.xlarge) in project.toml."
    else
        echo "# launch.py and job_launcher.ipynb start jobs with $IMAGE ([aws] ecr_image_uri in project.toml)."
    fi
}

main() {
    parse_arguments "$@"
    cd_to_repository_root
    local uri
    uri="$(read_image_uri)"
    parse_image_uri "$uri"
    if [[ "$DRY_RUN" == 1 ]]; then
        print_plan
    else
        check_tools_and_credentials
    fi
    build_image
    ensure_repository
    log_in_to_registry
    push_image
    print_next_step
}

main "$@"
