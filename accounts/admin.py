"""Accounts admin: users, departments and teams, for the roles the policy lets manage accounts."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from accounts.models import Department, Team, User
from portal.admin_policy import AccountAdminMixin


@admin.register(User)
class UserAdmin(AccountAdminMixin, DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "full_name", "department", "is_active", "is_staff", "last_login"]
    list_filter = ["is_active", "is_staff", "groups", "department"]
    search_fields = ["email", "full_name"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Profile", {"fields": ["full_name", "department"]}),
        ("Access", {"fields": ["is_active", "is_staff", "groups"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]})]
    readonly_fields = ["last_login", "date_joined", "is_staff"]
    filter_horizontal = ["groups"]


@admin.register(Department)
class DepartmentAdmin(AccountAdminMixin, admin.ModelAdmin):
    search_fields = ["name"]


@admin.register(Team)
class TeamAdmin(AccountAdminMixin, admin.ModelAdmin):
    list_display = ["name", "department", "manager"]
    list_filter = ["department"]
    search_fields = ["name"]
    filter_horizontal = ["members"]
    autocomplete_fields = ["manager", "department"]
