"""The packs app took over the pack job model, its tasks and its admin from the audit and gate
apps: stored jobs, audit events, queued messages and bookmarks from before keep working."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from audit.models import AuditEvent
from changelogs.models import Changelog
from outbox.services import publish_now
from packs.models import PackJob, PackStatus
from packs.services import params_key
from packs.tasks import pack_build, packs_resume
from releasegate.celery import app
from tests.conftest import Cast
from tests.packs.test_packs import request_pack
from tests.releasegate.gate_support import ready_changelog

BEFORE = [("packs", None)]  # unapplies packs.0001 and audit.0008, which depends on it
STATE_BEFORE = [("audit", "0007_witness_cosignatures")]  # the model still in the audit app


def _migrate(targets: list[tuple[str, str | None]]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def _leaves() -> list[tuple[str, str | None]]:
    executor = MigrationExecutor(connection)
    return list(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("migrations_restored")
def test_the_move_keeps_the_table_its_rows_and_the_permissions_given_on_it(cast: Cast) -> None:
    changelog = ready_changelog(cast)
    job = PackJob.objects.create(
        kind="changelog",
        params={"changelog": str(changelog.pk)},
        params_key=params_key("changelog", {"changelog": str(changelog.pk)}),
        requested_by=cast.auditor,
        created_at=timezone.now(),
        status=PackStatus.DONE,
        files={"pack.pdf": {"sha256": "ab" * 32}},
    )
    view = Permission.objects.get(content_type__app_label="packs", codename="view_packjob")
    cast.auditor.user_permissions.add(view)

    _migrate(BEFORE)
    try:
        old = MigrationExecutor(connection).loader.project_state(STATE_BEFORE).apps.get_model("audit", "PackJob")
        assert old.objects.get().files == {"pack.pdf": {"sha256": "ab" * 32}}
        assert ContentType.objects.get(pk=view.content_type_id).app_label == "audit"
    finally:
        _migrate(_leaves())

    assert PackJob.objects.get().pk == job.pk
    assert PackJob._meta.db_table == "audit_packjob"
    assert ContentType.objects.get(pk=view.content_type_id).app_label == "packs"
    assert cast.auditor.user_permissions.filter(pk=view.pk).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("eager_celery")
def test_pack_events_name_the_job_as_before_the_move(cast: Cast) -> None:
    changelog = ready_changelog(cast)

    job = request_pack(cast, {"kind": "changelog", "changelog": str(changelog.pk)})

    events = AuditEvent.objects.filter(action__startswith="pack:").order_by("id")
    assert [(e.action, e.target_type, e.target_id) for e in events] == [
        ("pack:requested", "audit.packjob", job["id"]),
        ("pack:built", "audit.packjob", job["id"]),
    ]


def test_the_tasks_answer_to_the_names_queued_messages_and_outbox_rows_carry() -> None:
    assert pack_build.name == "releasegate.packs.pack_build"
    assert packs_resume.name == "releasegate.packs.packs_resume"
    assert app.tasks["releasegate.packs.pack_build"].run.__module__ == "packs.tasks"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("eager_celery")
def test_an_outbox_row_naming_the_old_build_task_builds_the_pack(cast: Cast) -> None:
    changelog: Changelog = ready_changelog(cast)
    job = PackJob.objects.create(
        kind="changelog",
        params={"changelog": str(changelog.pk)},
        params_key=params_key("changelog", {"changelog": str(changelog.pk)}),
        requested_by=cast.auditor,
        created_at=timezone.now() - timedelta(minutes=1),
    )

    publish_now("releasegate.packs.pack_build", [str(job.pk)])

    job.refresh_from_db()
    assert job.status == PackStatus.DONE
    assert sorted(job.files) == ["pack.pdf", "pack.zip"]


@pytest.mark.django_db
def test_the_old_admin_address_of_the_packs_leads_to_the_new_one(cast: Cast) -> None:
    response = cast.session(cast.auditor).get("/admin/audit/packjob/request/")

    assert response.status_code == 302
    assert response["Location"] == "/admin/packs/packjob/request/"
