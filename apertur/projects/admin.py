from django.contrib import admin

from apertur.projects.models import Plan, Project


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ("name", "price_cents", "currency", "uploads_per_month", "max_active_sessions")

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        # The name is the plan's key: Stripe's price lookup_key ("pro" -> Pro), `billing simulate --plan` and the
        # price list `apertur migrate` seeds by name (a renamed plan would be seeded again beside it) all match
        # on it. Limits and the displayed price stay editable.
        return ("name",) if obj is not None else ()


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("name", "public_id", "owner", "plan", "created_at")
    list_select_related = ("owner", "plan")
    search_fields = ("name", "public_id", "owner__email")
    list_filter = ("plan",)
    readonly_fields = ("public_id", "created_at")
    raw_id_fields = ("owner",)

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        # The owner is who connected apps, tokens, API keys and billing answer to (connections and tokens keep
        # the user who authorized them): moving a project to someone else is not an edit of one field. Set when
        # a project is added here; fixed after.
        return (*self.readonly_fields, "owner") if obj is not None else self.readonly_fields

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        # A plan change goes through the service: audited and announced to webhooks (plan.changed).
        if change and "plan" in form.changed_data:
            from apertur.projects.services import change_plan

            new_plan = obj.plan
            obj.plan = Project.objects.get(pk=obj.pk).plan
            super().save_model(request, obj, form, change)
            change_plan(project=obj, plan=new_plan, actor=request.user)
            obj.refresh_from_db()
            return
        super().save_model(request, obj, form, change)
