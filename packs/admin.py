"""The evidence packs' admin page: auditors ask for a pack, follow its build and download it."""

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html_join

from audit.admin import ReadOnlyAdmin
from changelogs.models import Domain
from core.actors import actor_of
from core.errors import ApplicationError
from packs.models import PackJob, PackKind, PackStatus
from packs.services import pack_request_for


class PackRequestForm(forms.Form):
    kind = forms.ChoiceField(choices=PackKind.choices)
    changelog = forms.UUIDField(required=False, help_text="For a changelog pack: the changelog's id.")
    start = forms.DateTimeField(required=False, help_text="Population: from, UTC (e.g. 2026-10-01 00:00).")
    end = forms.DateTimeField(required=False, help_text="Population: to (exclusive), UTC.")
    domain = forms.ModelChoiceField(queryset=Domain.objects.all(), required=False, to_field_name="slug")
    sample_size = forms.IntegerField(initial=25, min_value=0, max_value=1000, required=False)
    seed = forms.IntegerField(required=False, min_value=0, help_text="Leave empty for a new random seed.")


@admin.register(PackJob)
class PackJobAdmin(ReadOnlyAdmin):
    """Evidence packs for auditors: ask for one, follow its build, download it when done."""

    list_display = ("created_at", "kind", "params", "status", "progress", "stage", "requested_by", "downloads")
    list_filter = ("kind", "status")
    change_list_template = "packs/packjob_changelist.html"

    def get_urls(self) -> list[URLPattern]:
        return [
            path("request/", self.admin_site.admin_view(self.request_view), name="packs_pack_request"),
            *super().get_urls(),
        ]

    @admin.display(description="files")
    def downloads(self, job: PackJob) -> str:
        if job.status != PackStatus.DONE:
            return "—"
        return format_html_join(
            " ", '<a href="/api/v1/packs/{}/files/{}">{}</a>', ((job.pk, name, name) for name in sorted(job.files))
        )

    def request_view(self, request: HttpRequest) -> HttpResponse:
        if not (request.user.is_superuser or request.user.has_perm("audit.view_auditevent")):
            raise DjangoPermissionDenied("Evidence packs are for auditors.")
        form = PackRequestForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                _job, created = pack_request_for(
                    acting_user=actor_of(request),
                    kind=data["kind"],
                    changelog=data["changelog"],
                    start=data["start"],
                    end=data["end"],
                    domain=data["domain"].slug if data["domain"] else "",
                    sample_size=data["sample_size"] if data["sample_size"] is not None else 25,
                    seed=data["seed"],
                )
            except ApplicationError as error:
                form.add_error(None, error.message)
            else:
                self.message_user(request, "Pack requested." if created else "This pack is already being built.")
                return HttpResponseRedirect(reverse("admin:packs_packjob_changelist"))
        context = {**self.admin_site.each_context(request), "title": "Request an evidence pack", "form": form}
        return TemplateResponse(request, "packs/pack_request.html", context)
