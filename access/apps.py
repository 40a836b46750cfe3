"""App config for access."""
from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "access"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in, user_login_failed
        from django.core.signals import setting_changed

        from access.authentication import audit_sign_in_failed, audit_signed_in
        from access.resolvers import reset_principal_resolver

        # Every sign-in and refused sign-in, whichever backend, is an audit event.
        user_logged_in.connect(audit_signed_in, dispatch_uid="kbsearch-audit-sign-in")
        user_login_failed.connect(audit_sign_in_failed, dispatch_uid="kbsearch-audit-sign-in-failed")

        def _reset_on_change(*, setting: str, **_kwargs) -> None:
            if setting == "KBSEARCH_PRINCIPAL_RESOLVER":
                reset_principal_resolver()

        setting_changed.connect(_reset_on_change, weak=False)
