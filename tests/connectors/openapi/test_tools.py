"""Operations → tools: names, descriptions, one input schema, fixed headers, annotations, filters."""

from __future__ import annotations

from typing import Any

import pytest

from tests._specs import vendor_spec
from tests.connectors.openapi.conftest import ingested, openapi
from toolbridge import Hub, Principal
from toolbridge.connectors.openapi import IngestOptions, OpenAPIConnector, OperationFilter, OperationOverride
from toolbridge.errors import ToolNotFound

OK = {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}}


def op(**fields: Any) -> dict[str, Any]:
    return {"responses": OK, **fields}


def names(document: dict[str, Any], **kwargs: Any) -> list[str]:
    return [t.name for t in ingested(document, **kwargs).tools]


def test_names_come_from_operation_ids_in_snake_case_else_method_and_path() -> None:
    doc = openapi(
        {
            "/pets": {"get": op(operationId="listPets"), "post": op(operationId="chat.postMessage")},
            "/pets/{id}": {"get": op(operationId="find pet by id"), "delete": op()},
            "/HTTPServers": {"get": op(operationId="getHTTPServerURLs")},
        }
    )
    assert names(doc) == [
        "api.list_pets",
        "api.chat_post_message",
        "api.find_pet_by_id",
        "api.delete_pets_id",
        "api.get_http_server_urls",
    ]


def test_long_names_are_cut_to_64_with_a_stable_digest() -> None:
    long_id = "getTheVeryLongAndDescriptiveNameOfAnOperationThatNoAgentWantsToTypeEver"
    doc = openapi({"/a": {"get": op(operationId=long_id)}, "/b": {"get": op(operationId=long_id)}})
    first, second = names(doc, name="connector")
    assert len(first) <= 64 and len(second) <= 64 and first != second
    assert first.startswith("connector.get_very_long")  # small words go first when a name is shortened
    # stable: the same operation keeps its name when the document gains operations before it
    grown = openapi({"/0": {"get": op(operationId=long_id + "X")}, **doc["paths"]})
    assert first in names(grown, name="connector") and second in names(grown, name="connector")


def test_long_names_keep_the_words_that_tell_them_apart() -> None:
    """GitHub Enterprise Cloud's ``actions/get-fork-pr-contributor-approval-permissions-organization``
    and ``…-repository`` were cut at 64 characters to the same words, told apart only by their digests
    (31 of its 1,471 tools; Box's ``…/schema#add`` and ``…/schema#update`` too): an agent could not tell
    which is which by name. Words now go from the middle, verbs last. Found by an outside probe."""
    ids = [
        "actions/get-fork-pr-contributor-approval-permissions-organization",
        "actions/get-fork-pr-contributor-approval-permissions-repository",
        "enterprise-admin/create-self-hosted-runner-group-for-enterprise",
        "enterprise-admin/delete-self-hosted-runner-group-from-enterprise",
    ]
    doc = openapi({f"/{n}": {"get": op(operationId=operation_id)} for n, operation_id in enumerate(ids)})
    got = names(doc, name="github")
    assert all(len(name) <= 64 for name in got)
    stems = [name.rsplit("_", 1)[0] for name in got]  # without the digest
    assert len(set(stems)) == 4, stems
    assert stems[0].startswith("github.actions_get_fork_pr_") and stems[0].endswith("_organization")
    assert stems[1].endswith("_repository")
    assert "_create_" in stems[2] and "_delete_" in stems[3]
    member = (
        "secret_scanning_non_provider_patterns_enabled_for_new_repositories"  # 68: an argument's limit is 64
    )
    body = {"content": {"application/json": {"schema": {"type": "object", "properties": {member: {}}}}}}
    patch = openapi({"/settings": {"patch": op(operationId="patch", requestBody=body)}})
    (argument,) = ingested(patch).tools[0].input_schema["properties"]
    assert len(argument) <= 64 and argument.startswith("secret_") and "_new_repositories_" in argument


def test_descriptions_combine_summary_and_description_trimmed() -> None:
    doc = openapi(
        {"/a": {"get": op(operationId="a", summary="List things.", description="Long words " * 100)}}
    )
    (tool,) = ingested(doc, IngestOptions(description_max_chars=80)).tools
    assert tool.description.startswith("List things.\n\nLong words")
    assert len(tool.description) <= 80 and tool.description.endswith("…")


def test_one_input_schema_with_collisions_disambiguated() -> None:
    doc = openapi(
        {
            "/items/{id}": {
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "put": op(
                    operationId="put",
                    parameters=[
                        {"name": "id", "in": "query", "schema": {"type": "string"}},
                        {"name": "X-Trace", "in": "header", "schema": {"type": "string"}},
                        {"name": "session", "in": "cookie", "schema": {"type": "string"}},
                        {"name": "filter[status]", "in": "query", "schema": {"type": "string"}},
                    ],
                    requestBody={
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"id": {"type": "string"}, "name": {"type": "string"}},
                                    "required": ["name"],
                                }
                            }
                        },
                        "required": True,
                    },
                ),
            }
        }
    )
    (tool,) = ingested(doc).tools
    props = tool.input_schema["properties"]
    assert list(props) == ["id", "query_id", "X-Trace", "session", "filter_status", "body_id", "name"]
    assert tool.input_schema["required"] == ["id", "name"]
    assert props["id"]["type"] == "integer" and props["query_id"]["type"] == "string"


def test_fixed_headers_are_never_asked_of_the_agent() -> None:
    doc = openapi(
        {
            "/a": {
                "get": op(
                    operationId="a",
                    parameters=[
                        {
                            "name": "Accept",
                            "in": "header",
                            "required": True,
                            "schema": {"type": "string", "enum": ["application/vnd.x+json;version=2"]},
                        },
                        {
                            "name": "Content-Type",
                            "in": "header",
                            "required": True,
                            "schema": {"type": "string", "enum": ["application/json"]},
                        },
                        {
                            "name": "X-Api-Version",
                            "in": "header",
                            "required": True,
                            "schema": {"type": "string", "default": "2024-01-01"},
                        },
                        {
                            "name": "Stripe-Version",
                            "in": "header",
                            "required": True,
                            "schema": {"type": "string", "enum": ["2020"]},
                        },
                        {"name": "q", "in": "query", "schema": {"type": "string"}},
                    ],
                )
            }
        }
    )
    result = ingested(doc)
    assert list(result.tools[0].input_schema["properties"]) == ["q"]
    operation = result.operations["api.a"]
    assert operation.accept == "application/vnd.x+json;version=2"
    assert {(f.name, f.value) for f in operation.fixed} == {
        ("Content-Type", "application/json"),
        ("X-Api-Version", "2024-01-01"),
        ("Stripe-Version", "2020"),
    }


def test_annotations_from_the_method_overridable_per_operation() -> None:
    doc = openapi(
        {
            "/a": {
                "get": op(operationId="read"),
                "put": op(operationId="replace"),
                "delete": op(operationId="remove"),
                "post": op(operationId="search"),
            }
        }
    )
    overrides = {"search": OperationOverride(read_only=True, description="Search things")}
    tools = {t.name: t for t in ingested(doc, IngestOptions(overrides=overrides)).tools}
    read, replace, remove, search = (tools[f"api.{n}"] for n in ("read", "replace", "remove", "search"))
    assert read.annotations.read_only and read.annotations.idempotent
    assert replace.annotations.idempotent and not replace.annotations.read_only
    assert remove.annotations.destructive and remove.annotations.idempotent
    assert search.annotations.read_only and search.description == "Search things"


def test_include_and_exclude_filters_are_reported() -> None:
    doc = openapi(
        {
            "/users": {
                "get": op(operationId="listUsers", tags=["users"]),
                "post": op(operationId="createUser", tags=["users"]),
            },
            "/users/{id}": {"delete": op(operationId="deleteUser", tags=["users"])},
            "/admin/x": {"get": op(operationId="adminThing", tags=["admin"])},
        }
    )
    options = IngestOptions(
        include=OperationFilter(tags=("users",)),
        exclude=OperationFilter(methods=("DELETE",), operations=("create*",)),
    )
    result = ingested(doc, options)
    assert [t.name for t in result.tools] == ["api.list_users"]
    reasons = {i.operation: i.reason for i in result.report.excluded}
    assert reasons == {
        "createUser": "'exclude' matched operation 'create*'",
        "deleteUser": "'exclude' matched method DELETE",
        "adminThing": "not matched by 'include'",
    }
    only_paths = ingested(doc, IngestOptions(include=OperationFilter(paths=("/users/*",))))
    assert [t.name for t in only_paths.tools] == ["api.delete_user"]


def test_a_broken_operation_is_skipped_with_its_pointer_others_kept() -> None:
    doc = openapi(
        {
            "/good": {"get": op(operationId="good")},
            "/bad": {"get": op(operationId="bad", parameters=[{"$ref": "#/components/parameters/Nope"}])},
        }
    )
    result = ingested(doc)
    assert [t.name for t in result.tools] == ["api.good"]
    (issue,) = result.report.skipped
    assert issue.pointer == "/paths/~1bad/get/parameters/0"
    assert "unresolvable $ref '#/components/parameters/Nope'" in issue.reason
    assert "1 skipped" in result.report.summary()


def test_a_get_whose_name_changes_something_is_not_read_only() -> None:
    doc = openapi(
        {
            "/apps.uninstall": {"get": op(operationId="apps.uninstall")},
            "/views.update": {"get": op(operationId="views.update")},
            "/admin.invites.list": {"get": op(operationId="admin.inviteRequests.list")},  # reads: "list"
            "/status": {"get": op(operationId="get_post_update")},  # reads: "get"
            "/auth.revoke": {"get": op(operationId="auth.revoke")},
            "/sendMessage": {"get": op(operationId="sendMessage")},  # a method in the path: its name counts
            # a resource path names things: Discord's invite, Docker's archive download (found outside)
            "/invites/{code}": {"get": op(operationId="invite_resolve")},
            "/containers/{id}/archive": {"get": op(operationId="ContainerArchive")},
            "/users/{id}/delete": {"get": op(operationId="user_delete")},  # ... unless it ends in a verb
        }
    )
    result = ingested(doc, IngestOptions(overrides={"auth.revoke": OperationOverride(read_only=True)}))
    tools = {t.name: t.annotations for t in result.tools}
    assert not tools["api.apps_uninstall"].read_only and not tools["api.apps_uninstall"].idempotent
    assert not tools["api.views_update"].read_only
    assert tools["api.admin_invite_requests_list"].read_only and tools["api.get_post_update"].read_only
    assert tools["api.auth_revoke"].read_only  # the operator's override decides
    assert tools["api.invite_resolve"].read_only and tools["api.container_archive"].read_only
    assert not tools["api.send_message"].read_only and not tools["api.user_delete"].read_only
    issues = result.report.issues
    degraded = {i.operation: i.reason for i in issues if i.kind == "degraded" and "changes" in i.reason}
    assert set(degraded) == {"api.apps_uninstall", "api.views_update", "api.send_message", "api.user_delete"}
    uninstall = degraded["api.apps_uninstall"]
    assert "'uninstall'" in uninstall and "read_only: true" in uninstall


@pytest.mark.anyio
async def test_slacks_writing_gets_are_refused_to_a_read_only_agent() -> None:
    """Slack's document lists thirteen methods that change something as GET (apps.uninstall, auth.revoke,
    views.publish ...): an agent granted ``slack.*:read`` must not be able to call them."""
    hub = Hub()
    hub.add_connector(OpenAPIConnector.from_spec("slack", vendor_spec("slack-web.v2.json")))
    reported = {i.operation for i in hub.connector("slack").report.issues}
    writing = {t.operation for t in hub.catalog if t.name in reported and not t.annotations.read_only}
    assert writing == {
        "apps_permissions_request",
        "apps_permissions_users_request",
        "apps_uninstall",
        "auth_revoke",
        "dialog_open",
        "files_remote_share",
        "views_open",
        "views_publish",
        "views_push",
        "views_update",
        "workflows_step_completed",
        "workflows_step_failed",
        "workflows_update_step",
    }
    reader = Principal.agent("reader", ["slack.*:read"])
    async with hub:
        with pytest.raises(ToolNotFound):  # outside its scopes: answered like a missing tool
            await hub.call(reader, "slack.auth_revoke", {})
    assert hub.get_tool(reader, "slack.conversations_history").annotations.read_only
