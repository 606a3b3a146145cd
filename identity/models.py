"""Second factors enrolled in Release Gate. TOTP devices are django-otp's own model
(django_otp.plugins.otp_totp.TOTPDevice); passkeys are here, because a passkey also signs
approvals and its public key is kept for the evidence packs."""

from django.conf import settings
from django.db import models


class ExternalIdentity(models.Model):
    """Who a person is at the identity provider: (issuer, subject), the one pair OpenID Connect
    promises never to reassign (releasegate/sso.py)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="external_identities")
    issuer = models.CharField(max_length=500)
    subject = models.CharField(max_length=255)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="external_identity_once")]

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"


class PasskeyStatus(models.TextChoices):
    PENDING = "pending", "Registered, waiting for a second administrator"
    ACTIVE = "active", "Confirmed"
    REVOKED = "revoked", "Revoked"


class Passkey(models.Model):
    """A WebAuthn credential a person registered. It proves a second factor at once; it signs
    approvals only once a second administrator has confirmed that it is this person's
    (``identity.services.passkey_confirm``). Never deleted: approvals name it forever."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="passkeys")
    name = models.CharField(max_length=100)
    credential_id = models.CharField(max_length=1400, unique=True, help_text="base64url, as WebAuthn names it.")
    public_key_cose = models.TextField(help_text="The credential public key as registered (COSE, base64url).")
    public_key_pem = models.TextField(help_text="The same key as SubjectPublicKeyInfo PEM, for offline verifiers.")
    algorithm = models.IntegerField(help_text="COSE algorithm identifier (-7 ES256, -8 EdDSA, -257 RS256).")
    sign_count = models.PositiveBigIntegerField(default=0)
    aaguid = models.CharField(max_length=36, blank=True)
    status = models.CharField(max_length=16, choices=PasskeyStatus.choices, default=PasskeyStatus.PENDING)
    registered_at = models.DateTimeField()
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    confirmed_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["registered_at"]

    def __str__(self) -> str:
        return f"{self.name} of {self.user}"
