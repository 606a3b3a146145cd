"""OpenAPI extensions: how drf-spectacular should describe our authentication."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "releasegate.authentication.ApiTokenAuthentication"
    name = "pipelineToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A service-account API token (rgp_…), shown once when it is issued.",
        }


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
