"""Authorities held before the two-person rule are carried over as grants in force."""

from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("approvals", "0002_retrospective_service")]
AFTER = [("approvals", "0003_authority_grants")]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("migrations_restored")
def test_authorities_held_as_permissions_become_grants_in_force() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    # The state to write into: approvals before grants, and django-guardian's own tables.
    guardian = executor.loader.graph.leaf_nodes("guardian")
    apps: Any = executor.loader.project_state(BEFORE + guardian).apps
    domain = apps.get_model("changelogs", "Domain").objects.create(slug="pay", name="Pay", owning_squad="s")
    user_model = apps.get_model("releasegate", "User")
    signer = user_model.objects.create(username="signer")
    member = user_model.objects.create(username="member")
    group = apps.get_model("auth", "Group").objects.create(name="board")
    member.groups.add(group)
    content_type = apps.get_model("contenttypes", "ContentType").objects.get(app_label="changelogs", model="domain")
    permission = apps.get_model("auth", "Permission").objects.get(content_type=content_type, codename="sign_off")
    apps.get_model("guardian", "UserObjectPermission").objects.create(
        user=signer, permission=permission, content_type=content_type, object_pk=str(domain.pk)
    )
    apps.get_model("guardian", "GroupObjectPermission").objects.create(
        group=group, permission=permission, content_type=content_type, object_pk=str(domain.pk)
    )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)

    from approvals.models import AuthorityGrant
    from approvals.selectors import authorities_of
    from changelogs.models import Domain
    from releasegate.models import User

    grants = AuthorityGrant.objects.filter(status="active")
    assert sorted(grant.subject for grant in grants) == sorted(
        [
            f"authority:{domain.pk}:sign_off:user:{signer.pk}",
            f"authority:{domain.pk}:sign_off:group:{group.pk}",
            f"membership:group:{group.pk}:user:{member.pk}",
        ]
    )
    assert all(grant.requested_by_id is None for grant in grants)
    pay = Domain.objects.get(pk=domain.pk)
    assert authorities_of(user=User.objects.get(pk=signer.pk), domain=pay) == {"sign_off"}
    assert authorities_of(user=User.objects.get(pk=member.pk), domain=pay) == {"sign_off"}
