"""The second-factor page of the admin (enrol TOTP, verify a code, see and confirm passkeys)
and the passkeys list. Passkeys are registered and verified with the browser's WebAuthn API
against identity/apis.py."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.admin import ReadOnlyAdmin
from core.actors import actor_of
from core.errors import ApplicationError
from identity import services
from identity.errors import FactorError
from identity.models import Passkey, PasskeyStatus
from identity.sessions import second_factor_of


class CodeForm(forms.Form):
    token = forms.RegexField(r"^[0-9]{6,8}$", label="Code from your authenticator app", max_length=8)


class ConfirmForm(forms.Form):
    passkey = forms.IntegerField(widget=forms.HiddenInput)


def non_atomic(view: Any) -> Any:
    """Outside the request's transaction: a failed code leaves its audit event behind."""

    def wrapped(request: HttpRequest) -> HttpResponse:
        response: HttpResponse = view(request)
        return response

    return transaction.non_atomic_requests(wrapped)


@admin.register(Passkey)
class PasskeyAdmin(ReadOnlyAdmin):
    list_display = ("user", "name", "status", "registered_at", "confirmed_by", "confirmed_at", "last_used_at")
    list_filter = ("status",)
    search_fields = ("user__username", "name", "credential_id")

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("second-factor/", wrap(non_atomic(self.factor_view)), name="identity_factor"),
            *super().get_urls(),
        ]

    def factor_view(self, request: HttpRequest) -> HttpResponse:
        """Prove a second factor for this session; enrol TOTP when there is none."""
        user = actor_of(request)
        enrolled = TOTPDevice.objects.filter(user=user, confirmed=True).exists()
        form = CodeForm(request.POST if request.method == "POST" and "token" in request.POST else None)
        confirm = ConfirmForm(request.POST if request.method == "POST" and "passkey" in request.POST else None)
        if form.is_bound and form.is_valid():
            try:
                if enrolled:
                    services.second_factor_verify_totp(
                        request=request, user=actor_of(request), token=form.cleaned_data["token"]
                    )
                else:
                    services.totp_confirm(
                        request=request, acting_user=actor_of(request), token=form.cleaned_data["token"]
                    )
            except ApplicationError as error:
                services.second_factor_failure_record(
                    user=actor_of(request), method="totp", code=error.code, message=error.message
                )
                form.add_error(None, error.message)
            else:
                self.message_user(request, "Second factor verified for this session.", messages.SUCCESS)
                return HttpResponseRedirect(request.GET.get("next") or reverse("admin:index"))
        if confirm.is_bound and confirm.is_valid():
            passkey = Passkey.objects.filter(pk=confirm.cleaned_data["passkey"]).first()
            try:
                if passkey is None:
                    raise ApplicationError(FactorError.PASSKEY_UNKNOWN, "No such passkey.")
                services.passkey_confirm(acting_user=actor_of(request), passkey=passkey)
            except ApplicationError as error:
                self.message_user(request, error.message, messages.ERROR)
            else:
                self.message_user(request, f"Confirmed: {passkey}.", messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:identity_factor"))
        pending_device = None
        if not enrolled:
            pending_device = TOTPDevice.objects.filter(user=user, confirmed=False).last()
            if pending_device is None:
                with transaction.atomic():
                    pending_device = services.totp_enroll(acting_user=actor_of(request))
        found = second_factor_of(request)
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": "Second factor",
            "form": form,
            "enrolled": enrolled,
            "config_url": pending_device.config_url if pending_device else "",
            "session_factor": found["method"] if found else None,
            "passkeys": Passkey.objects.filter(user=user),
            "passkeys_configured": services.passkeys_configured(),
            "to_confirm": (
                Passkey.objects.filter(status=PasskeyStatus.PENDING).exclude(user=user).select_related("user")
                if request.user.has_perm("identity.change_passkey")
                else []
            ),
        }
        return TemplateResponse(request, "identity/second_factor.html", context)
