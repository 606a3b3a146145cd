"""Identities: people and pipelines.

Pipelines are users too (``is_service_account``), so that object permissions, audit actors
and ownership work the same for both; a service account never has a usable password and
authenticates only with API tokens.
"""

from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    is_service_account = models.BooleanField(
        default=False,
        help_text="A pipeline identity: authenticates with API tokens only, never logs in.",
    )

    @property
    def audit_actor(self) -> str:
        kind = "service_account" if self.is_service_account else "user"
        return f"{kind}:{self.username}"


class ApiToken(models.Model):
    """A bearer token of a service account. Only its SHA-256 is stored; the token itself is
    shown once. The prefix is public: it finds the row and lets secret scanners spot leaks."""

    service_account = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="api_tokens", limit_choices_to={"is_service_account": True}
    )
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. the pipeline name.")
    prefix = models.CharField(max_length=16, unique=True)
    token_hash = models.CharField(max_length=64, help_text="SHA-256 of the whole token, hex.")
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+", null=True, blank=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+", null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"
