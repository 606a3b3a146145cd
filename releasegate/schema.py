"""OpenAPI extensions: how drf-spectacular should describe our authentication, and every error
code an answer can carry."""

from enum import StrEnum
from typing import Any

from django.utils.module_loading import import_string
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.hooks import postprocess_schema_enums


class ApiTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "releasegate.authentication.ApiTokenAuthentication"
    name = "pipelineToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A service-account API token (rgp_…), shown once when it is issued.",
        }


def error_code_enums() -> list[type[StrEnum]]:
    """Every enumeration of error codes the API answers with (docs/api-errors.md lists each)."""
    from approvals.errors import ApprovalError
    from audit.errors import AuditError
    from changelogs.content_rules import ContentError
    from changelogs.errors import ChangelogError
    from changelogs.parsers import ParseErrorCode
    from core.errors import CommonError
    from identity.errors import FactorError
    from releasegate.deployments import DeploymentError
    from releasegate.freezes import FreezeError
    from releasegate.github import GitHubError
    from releasegate.services import IdentityError
    from releasegate.tokens import TokenError

    # The packs app stands above the gate (import-linter's layers), so it is named here by path,
    # as the project's wiring names apps (INSTALLED_APPS, the URL includes), not imported.
    pack_error: type[StrEnum] = import_string("packs.errors.PackError")
    return [
        CommonError,
        ChangelogError,
        ContentError,
        ParseErrorCode,
        IdentityError,
        FactorError,
        AuditError,
        ApprovalError,
        DeploymentError,
        FreezeError,
        GitHubError,
        pack_error,
        TokenError,
    ]


def error_codes_postprocess(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """The error body's ``code`` (and each field problem's) takes one of the documented codes:
    clients can generate their branches from the schema."""
    result = postprocess_schema_enums(result, generator, request=request, public=public)  # type: ignore[no-untyped-call]
    codes = sorted({str(code) for enum in error_code_enums() for code in enum} | {"required", "unknown_field"})
    schemas = result.get("components", {}).get("schemas", {})
    if "Error" in schemas:
        schemas["Error"]["properties"]["code"]["description"] = (
            "Stable error code; see docs/api-errors.md. One of: " + ", ".join(f"`{code}`" for code in codes) + "."
        )
    return result


def token_scope_responses(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """drf-spectacular post-processing hook: every operation a pipeline token may call can
    answer 403 ``token_scope_missing`` (the token lacks the operation's scope), so the schema
    says so wherever an operation does not list a 403 of its own."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            if any("pipelineToken" in requirement for requirement in operation.get("security", [])):
                operation["responses"].setdefault(
                    "403",
                    {
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                        "description": "The API token lacks the scope this operation needs (token_scope_missing).",
                    },
                )
    return result
