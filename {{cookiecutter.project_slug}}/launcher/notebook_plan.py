"""The settings of one `make notebook` run, validated, and the names derived from them.

Kept apart from notebook_instance.py (the command line) and notebook_aws.py (the requests) so both
can use it without importing each other.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from launcher.notebook_inputs import GITHUB_API_URL, TOKEN_ENV_DEFAULT, GitHubRepo, Token, derived_name


@dataclass
class Plan:
    """Every setting of one `make notebook` run, already validated."""

    slug: str
    region: str
    name: str
    repo: GitHubRepo | None = None
    branch: str = ""
    instance_type: str = ""
    volume: int = 0
    role_arn: str = ""
    platform: str = ""
    private: bool = False
    token: Token | None = None
    token_env: str = TOKEN_ENV_DEFAULT
    github_user: str = ""
    github_api_url: str = GITHUB_API_URL

    @property
    def code_repo_prefix(self) -> str:
        return derived_name(self.name, "-" * 10)[:-9]  # room for "-" + 8 hex digits of URL and branch

    @property
    def code_repo_name(self) -> str:
        digest = hashlib.sha256(f"{self.repo.https_url}\n{self.branch}".encode()).hexdigest()[:8]
        return self.code_repo_prefix + digest  # SageMaker cannot change a code repository's URL or branch

    def owns_code_repo(self, name: str | None) -> bool:
        return bool(name) and re.fullmatch(re.escape(self.code_repo_prefix) + "[0-9a-f]{8}", name) is not None

    @property
    def lifecycle_name(self) -> str:
        return derived_name(self.name, "-launcher-kernel")

    @property
    def secret_name(self) -> str:
        return f"AmazonSageMaker-{self.name}-github"  # AmazonSageMakerFullAccess lets the role read these

    def tags(self, *extra: tuple[str, str]) -> list[dict[str, str]]:
        pairs = (("project", self.slug), ("managed-by", "launcher.notebook_instance"), *extra)
        return [{"Key": key, "Value": value} for key, value in pairs]
