from django.contrib import admin

from apertur.projects.models import Plan, Project


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin):
    list_display = ("name", "price_cents", "currency", "uploads_per_month", "max_active_sessions")


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("name", "public_id", "owner", "plan", "created_at")
    list_select_related = ("owner", "plan")
    search_fields = ("name", "public_id", "owner__email")
    list_filter = ("plan",)
    readonly_fields = ("public_id", "created_at")
    raw_id_fields = ("owner",)
