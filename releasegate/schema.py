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
