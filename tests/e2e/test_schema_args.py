"""The argument generator of the prism test keeps every required member of a schema."""

from __future__ import annotations

from tests.e2e._schema_args import arguments_for


def test_a_branch_of_required_members_adds_to_the_required_members_around_it() -> None:
    body = {
        "type": "object",
        "properties": {
            "type": {"type": "string", "enum": ["Issue", "PullRequest"]},
            "id": {"type": "integer"},
            "owner": {"type": "string"},
        },
        "required": ["type"],
        "additionalProperties": False,
        "anyOf": [{"required": ["id"]}, {"required": ["owner"]}],
    }
    schema = {"type": "object", "properties": {"body": body}, "required": ["body"]}

    assert arguments_for(schema) == {"body": {"type": "Issue", "id": 1}}
