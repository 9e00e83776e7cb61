"""Account events that must hold on every path (services, admin forms, shell, tasks).

- Disabling a user, changing their password, or changing their role or duty ends all their
  sessions and API tokens at once, and is audited.
- A login stamps the session with its start, for the absolute session lifetime.
- A lockout (django-axes) is audited.
"""

import time

from django.contrib.auth.models import Group
from django.contrib.auth.signals import user_logged_in
from django.db.models.signals import m2m_changed, post_save, pre_save

from accounts.models import User
from accounts.policy import Duty, Role
from audit.choices import AuditAction
from audit.services import record

SESSION_STARTED_KEY = "portal_auth_started"
_ACCESS_GROUPS = frozenset([r.value for r in Role] + [d.value for d in Duty])


def _actor(instance):
    """Who acted: a service says so on the instance; otherwise the request's or task's user."""
    actor = getattr(instance, "_portal_actor", None)
    if actor is not None:
        return actor
    try:
        from auditlog.context import auditlog_value

        return auditlog_value.get({}).get("actor")
    except LookupError:
        return None


def _user_pre_save(sender, instance: User, update_fields=None, raw=False, **kwargs):
    instance._portal_security_change = None
    if raw or instance.pk is None:
        return
    if update_fields is not None and not {"password", "is_active"} & set(update_fields):
        return  # e.g. last_login at every login: no extra query
    old = User.objects.filter(pk=instance.pk).values("password", "is_active").first()
    if old is None:
        return
    if old["is_active"] and not instance.is_active:
        instance._portal_security_change = AuditAction.USER_DISABLED
    elif old["password"] != instance.password:
        instance._portal_security_change = AuditAction.PASSWORD_CHANGED


def _user_post_save(sender, instance: User, created=False, raw=False, **kwargs):
    from accounts import services

    change = getattr(instance, "_portal_security_change", None)
    instance._portal_security_change = None
    if raw or created or change is None:
        return
    actor = _actor(instance)
    if change == AuditAction.USER_DISABLED:
        reason = getattr(instance, "_portal_reason", "") or "disabled"
    else:
        reason = "password changed"
    sessions, tokens = services.end_sessions_and_tokens(instance, actor=actor, reason=reason)
    record(
        change,
        actor=actor,
        resource="user",
        object_ids=[instance.pk],
        reason=reason,
        extra={"sessions_ended": sessions, "tokens_revoked": tokens},
    )


def _groups_changed(sender, instance, action, reverse, model, pk_set, **kwargs):
    from accounts import services

    if action not in ("post_add", "post_remove", "pre_clear"):
        return
    if action == "pre_clear":
        # Which groups are going is only known before the clear.
        if reverse:
            users = list(instance.user_set.all()) if instance.name in _ACCESS_GROUPS else []
            names = [instance.name]
        else:
            users = [instance]
            names = list(instance.groups.filter(name__in=_ACCESS_GROUPS).values_list("name", flat=True))
    elif reverse:  # group.user_set.add/remove(users)
        if instance.name not in _ACCESS_GROUPS:
            return
        users = list(User.objects.filter(pk__in=pk_set or ()))
        names = [instance.name]
    else:  # user.groups.add/remove(groups)
        users = [instance]
        names = list(Group.objects.filter(pk__in=pk_set or (), name__in=_ACCESS_GROUPS).values_list("name", flat=True))
    if not names or not users:
        return
    verb = "granted" if action == "post_add" else "removed"
    for user in users:
        actor = _actor(user) if not reverse else _actor(instance)
        services.forget_cached_access(user)
        sessions, tokens = services.end_sessions_and_tokens(user, actor=actor, reason=f"role {verb}")
        record(
            AuditAction.ROLE_CHANGED,
            actor=actor,
            resource="user",
            object_ids=[user.pk],
            reason=f"{verb}: {', '.join(sorted(names))}",
            extra={verb: sorted(names), "sessions_ended": sessions, "tokens_revoked": tokens},
        )


def _logged_in(sender, request, user, **kwargs):
    session = getattr(request, "session", None)
    if session is not None:
        session[SESSION_STARTED_KEY] = int(time.time())


def _locked_out(sender, request, username=None, ip_address=None, **kwargs):
    from django.contrib.auth import get_user_model

    from accounts.lockout import attempted_name
    from audit.signals import username_hash

    # ``username`` is axes' key (a hash); the typed name comes from the attempt's credentials.
    name = attempted_name(request, getattr(request, "axes_credentials", None))
    account = get_user_model().objects.filter(email=name).first() if name else None
    starting = getattr(request, "axes_failures_since_start", None) is not None
    record(
        AuditAction.LOCKED_OUT,
        actor=account,
        resource="api_token" if _is_token_request(request) else "session",
        success=False,
        reason="locked out after repeated failures" if starting else "attempt refused during lockout",
        extra={"username_hash": username_hash(name)},
    )


def _is_token_request(request) -> bool:
    match = getattr(request, "resolver_match", None)
    return bool(match and match.url_name == "api-token")


def connect() -> None:
    from axes.signals import user_locked_out

    pre_save.connect(_user_pre_save, sender=User, dispatch_uid="accounts_user_pre_save")
    post_save.connect(_user_post_save, sender=User, dispatch_uid="accounts_user_post_save")
    m2m_changed.connect(_groups_changed, sender=User.groups.through, dispatch_uid="accounts_groups_changed")
    user_logged_in.connect(_logged_in, dispatch_uid="accounts_session_started")
    user_locked_out.connect(_locked_out, dispatch_uid="accounts_locked_out")
