from django.urls import path

from audit import apis

urlpatterns = [
    path("audit/checkpoint", apis.CheckpointLatestApi.as_view(), name="audit-checkpoint"),
    path("audit/checkpoints/<int:tree_size>", apis.CheckpointAtApi.as_view(), name="audit-checkpoint-at"),
    path("audit/public-key", apis.PublicKeyApi.as_view(), name="audit-public-key"),
    path("audit/events/", apis.EventListApi.as_view(), name="audit-event-list"),
    path("audit/events/<int:event_id>/proof", apis.InclusionProofApi.as_view(), name="audit-inclusion-proof"),
    path("audit/consistency", apis.ConsistencyProofApi.as_view(), name="audit-consistency-proof"),
]
