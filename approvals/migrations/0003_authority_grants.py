"""Signing authorities become grants that a second administrator confirms (approvals.AuthorityGrant).
The authorities held today are carried over as grants in force."""

import uuid
from typing import Any

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.utils import timezone


AUTHORITIES = ("sign_off", "security_sign_off", "data_sign_off")
HELD_BEFORE = "Held before signing authorities needed a second administrator (migration)."


def grants_from_permissions(apps: Any, schema_editor: Any) -> None:
    """Every signing authority held today (django-guardian object permissions on domains) and
    every membership of a group holding one becomes a grant in force, with no requester or
    confirmer on record: held before the two-person rule. Later grants follow the rule."""
    grant = apps.get_model("approvals", "AuthorityGrant")
    permission = apps.get_model("auth", "Permission")
    user_perm = apps.get_model("guardian", "UserObjectPermission")
    group_perm = apps.get_model("guardian", "GroupObjectPermission")
    user_model = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    codenames = dict(
        permission.objects.filter(content_type__app_label="changelogs", codename__in=AUTHORITIES).values_list(
            "id", "codename"
        )
    )
    now = timezone.now()

    def create(kind: str, subject: str, **fields: Any) -> None:
        if not grant.objects.filter(subject=subject, status="active").exists():
            grant.objects.create(
                kind=kind, subject=subject, status="active", reason=HELD_BEFORE, requested_at=now, **fields
            )

    for row in user_perm.objects.filter(permission_id__in=codenames):
        authority = codenames[row.permission_id]
        create(
            "authority",
            f"authority:{row.object_pk}:{authority}:user:{row.user_id}",
            domain_id=int(row.object_pk),
            authority=authority,
            user_id=row.user_id,
        )
    groups = set()
    for row in group_perm.objects.filter(permission_id__in=codenames):
        authority = codenames[row.permission_id]
        groups.add(row.group_id)
        create(
            "authority",
            f"authority:{row.object_pk}:{authority}:group:{row.group_id}",
            domain_id=int(row.object_pk),
            authority=authority,
            group_id=row.group_id,
        )
    for group_id in groups:
        for user_id in user_model.objects.filter(groups__id=group_id).values_list("id", flat=True):
            create("membership", f"membership:group:{group_id}:user:{user_id}", group_id=group_id, user_id=user_id)


class Migration(migrations.Migration):

    dependencies = [
        ('approvals', '0002_retrospective_service'),
        ('auth', '0012_alter_user_first_name_max_length'),
        ('changelogs', '0003_signing_authorities'),
        ('guardian', '0002_generic_permissions_index'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='AuthorityGrant',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('kind', models.CharField(choices=[('authority', 'A signing authority on a domain'), ('membership', 'Membership of a group that holds signing authority')], max_length=16)),
                ('authority', models.CharField(blank=True, help_text='For an authority grant.', max_length=32)),
                ('subject', models.CharField(help_text='What is granted, as one key: "authority:<domain>:<authority>:user:<id>", …', max_length=200)),
                ('status', models.CharField(choices=[('pending', 'Waiting for a second administrator'), ('active', 'In force'), ('refused', 'Refused or withdrawn before it took effect'), ('revoked', 'Revoked')], default='pending', max_length=16)),
                ('reason', models.CharField(max_length=500)),
                ('requested_at', models.DateTimeField()),
                ('decided_at', models.DateTimeField(blank=True, null=True)),
                ('revoked_at', models.DateTimeField(blank=True, null=True)),
                ('decided_by', models.ForeignKey(blank=True, help_text='Who confirmed (or refused) it: never the one who asked.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('domain', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='changelogs.domain')),
                ('group', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='auth.group')),
                ('requested_by', models.ForeignKey(blank=True, help_text='Empty for authorities held before grants needed a second administrator.', null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('revoked_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('user', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='authority_grants', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['-requested_at'],
                'indexes': [models.Index(fields=['status', 'kind'], name='grant_status_kind')],
                'constraints': [models.CheckConstraint(condition=models.Q(models.Q(('kind', 'authority'), _negated=True), models.Q(('domain__isnull', False), models.Q(('authority', ''), _negated=True), models.Q(models.Q(('group__isnull', True), ('user__isnull', False)), models.Q(('group__isnull', False), ('user__isnull', True)), _connector='OR')), _connector='OR'), name='grant_authority_targets_one'), models.CheckConstraint(condition=models.Q(models.Q(('kind', 'membership'), _negated=True), models.Q(('authority', ''), ('domain__isnull', True), ('group__isnull', False), ('user__isnull', False)), _connector='OR'), name='grant_membership_targets_both'), models.UniqueConstraint(condition=models.Q(('status__in', ['pending', 'active'])), fields=('subject',), name='grant_once')],
            },
        ),
        migrations.RunPython(grants_from_permissions, migrations.RunPython.noop),
    ]
