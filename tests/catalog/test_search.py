"""Tool search: the index ranks tools by what they do, over small catalogs and real ones.

The real catalog is the four large public API documents in ../shared/specs (about 1,100 tools; found by
tests/_specs.py); the labelled tasks are tests/catalog/tool_search_queries.tsv (also used by
bench/tool_search.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests._patience import patience
from tests._specs import vendor_spec

from toolbridge import Hub, Principal
from toolbridge.catalog import Catalog, Tool
from toolbridge.catalog._rerank import described
from toolbridge.catalog._search import Mode, SearchIndex, SearchResult
from toolbridge.catalog._semantic import load_embedder
from toolbridge.catalog._words import action, compounds, intent, name_actions, terms
from toolbridge.connectors.openapi import OpenAPIConnector
from toolbridge.errors import InvalidArguments, NotFound
from toolbridge.surfaces._tool_search import search_document

HERE = Path(__file__).parent
DOCUMENTS = {
    "slack": "slack-web.v2.json",
    "twilio": "twilio-api-v2010.json",
    "pagerduty": "pagerduty-rest.json",
    "openai": "openai.yaml",
}


def tool(name: str, description: str, *params: str) -> Tool:
    schema = {"type": "object", "properties": {p: {"type": "string"} for p in params}}
    return Tool(name, name.split(".")[0], description, schema)


def labelled_tasks() -> list[tuple[str, set[str]]]:
    lines = (HERE / "tool_search_queries.tsv").read_text(encoding="utf-8").splitlines()
    rows = [line.split("\t") for line in lines if line and not line.startswith("#")]
    return [(query, set() if expected == "-" else set(expected.split(","))) for query, expected in rows]


def test_terms_split_identifiers_drop_stop_words_and_stem() -> None:
    assert terms("listIncidentLogEntries") == ["list", "incident", "log", "entry"]
    assert terms("chat.postMessage") == ["chat", "post", "messag"]
    assert terms("users_lookup_by_email /v2/teams") == ["user", "lookup", "email", "team"]
    assert terms("Send the messages to a channel") == ["send", "messag", "channel"]
    assert terms("creating created create") == ["creat"] * 3


def test_intent_is_read_by_the_first_word_after_a_lead_in() -> None:
    assert intent("who is on call right now") == "read"
    assert intent("Show the log entries of an incident") == "read"
    assert intent("can you list the teams") == "read"
    assert intent("Please release a phone number I own") == "write"
    assert intent("I want to create a team") == "write"
    assert intent("chat completion with gpt") is None  # no verb: no preference
    assert intent("createChatCompletion") is None
    assert intent("") is None


def test_actions_are_read_from_the_first_word_and_from_every_word_of_a_name() -> None:
    assert action("Please release a phone number") == "delete"
    assert action("who is on call") == "read"
    assert action("rename the channel") == "update"
    assert action("chat completion") is None
    assert name_actions("usergroups_users_update") == {"update"}
    assert name_actions("createIncidentNote") == {"create"}
    assert name_actions("conversations_history") == frozenset()


def test_a_two_word_verb_is_read_as_the_verb_it_means() -> None:
    assert (intent("Get rid of allowlist IPL2"), action("Get rid of allowlist IPL2")) == ("write", "delete")
    assert (intent("pull up the notification template"), action("pull up the template")) == ("read", "read")
    assert action("please take the role away from user_12") is None  # only adjacent words make one verb
    assert action("take away the role from user_12") == "delete"
    assert action("set up a rule for incoming events") == "create"
    assert action("set the channel topic") == "update"
    assert action("turn off my snooze") == "update"
    assert action("get") == "read"  # a last word has no particle


def test_the_connector_name_does_not_match_every_tool_alike() -> None:
    index = SearchIndex(
        [
            tool("mail.send", "Send an email."),
            tool("mail.list_folders", "List the folders."),
            tool("chat.send_mail_digest", "Send a digest of the mail folder to a chat."),
        ]
    )
    found = index.search("mail folders")
    assert [h.tool.name for h in found.hits][:1] == ["mail.list_folders"]
    assert found.good


def test_name_words_outrank_description_words_and_ties_break_by_name_not_alphabet() -> None:
    index = SearchIndex(
        [
            tool("a.a_channel_archive", "Archive a channel."),  # "a" is no search term: same terms
            tool("a.aa_rename", "Rename something; also works after you archive a channel."),
            tool("a.channel_archive", "Archive a channel."),
        ]
    )
    hits = index.search("archive channel").hits
    assert hits[0].score == hits[1].score > hits[2].score
    assert [h.tool.name for h in hits] == ["a.channel_archive", "a.a_channel_archive", "a.aa_rename"]


def test_parameter_names_and_synonyms_count() -> None:
    index = SearchIndex(
        [tool("db.rows", "Return rows.", "tableName"), tool("db.stats", "Numbers about the server.")]
    )
    assert [h.tool.name for h in index.search("the table").hits] == ["db.rows"]  # from 'tableName'
    index = SearchIndex([tool("db.retrieve_user", "One user."), tool("db.drop_user", "One user, gone.")])
    assert index.search("fetch a user").hits[0].tool.name == "db.retrieve_user"  # 'fetch' ~ 'retrieve'


def test_no_match_and_empty_queries_are_flagged() -> None:
    index = SearchIndex([tool("mail.send", "Send an email."), tool("mail.delete", "Delete an email.")])
    assert not index.search("book a flight to Paris").good
    empty = index.search("the a of")
    assert empty.hits == [] and not empty.good and empty.terms == ()


def test_a_good_match_covers_the_query_in_any_field_of_the_best_hit() -> None:
    index = SearchIndex(
        [
            tool("crm.export_report", "Export a report."),
            tool("crm.list_notes", "List notes."),
            tool("crm.retrieve_deal", "One deal.", "reason"),
        ]
    )
    found = index.search("fetch the deal with its reason")  # 'fetch' ~ 'retrieve'; 'reason': a parameter
    assert found.hits[0].tool.name == "crm.retrieve_deal" and found.good
    scattered = index.search("fetch the deal, list notes, export the report")  # 2 of 6 words per tool
    assert scattered.hits and not scattered.good


def test_identifiers_in_a_query_are_values_a_good_match_need_not_cover() -> None:
    index = SearchIndex([tool("desk.get_ticket", "Get a ticket by its id."), tool("desk.close", "Close.")])
    found = index.search("get ticket TKT12345 and its history")  # tkt: a word no tool holds
    assert found.hits[0].tool.name == "desk.get_ticket" and not found.good  # 'history' is not covered
    found = index.search("get ticket TKT12345")
    assert found.hits[0].tool.name == "desk.get_ticket" and found.good
    assert described("get ticket TKT12345", ("get", "ticket", "tkt")) == ("get", "ticket")
    assert described("PSCH1", ("psch",)) == ("psch",)  # nothing else asked: the identifier counts


def test_the_catalog_rebuilds_its_index_when_tools_change() -> None:
    catalog = Catalog()
    catalog.add(tool("mail.send", "Send an email."))
    assert [h.tool.name for h in catalog.search("send email").hits] == ["mail.send"]
    catalog.add(tool("sms.send", "Send an SMS text to a phone."))
    assert catalog.search("text a phone").hits[0].tool.name == "sms.send"
    catalog.remove_connector("sms")
    assert "sms.send" not in [h.tool.name for h in catalog.search("text a phone").hits]


@pytest.fixture(scope="module")
def public_apis() -> Hub:
    hub = Hub()
    for name, document in DOCUMENTS.items():
        hub.add_connector(
            OpenAPIConnector.from_spec(name, vendor_spec(document), base_url="http://127.0.0.1:9")
        )
    assert hub.catalog.wait_for_embeddings(patience(600))  # made in the background when not cached
    return hub


MODES = pytest.mark.parametrize("mode", ["bm25", "fused"])


def ranked(hub: Hub, query: str, mode: Mode, limit: int = 5) -> SearchResult:
    if mode != "bm25" and load_embedder() is None:
        pytest.skip("toolbridge[semantic] is not installed (make env installs it): BM25F alone")
    hub.catalog.search_mode = mode
    try:
        return hub.catalog.search(query, limit=limit)
    finally:
        hub.catalog.search_mode = "fused"


@MODES
def test_labelled_tasks_find_their_tool_in_the_top_5(public_apis: Hub, mode: Mode) -> None:
    """Not a benchmark (bench/tool_search.py is): floors so that ranking regressions show."""
    tasks = [(q, e) for q, e in labelled_tasks() if e]
    assert len(public_apis.catalog) > 1000 and len(tasks) >= 150
    names = {q: [h.tool.name for h in ranked(public_apis, q, mode).hits] for q, _ in tasks}
    missed = [q for q, expected in tasks if not expected & set(names[q])]
    first = sum(1 for q, expected in tasks if names[q][:1] and names[q][0] in expected)
    # when written, over 306 tasks: BM25F 91.5% top-5, 65.4% top-1; fused 95.4%, 68.0%
    # (first sentences embedded by the int8 model, 2026-12-03: fused 94.8%, 69.9%; with the query's
    # read/write intent: fused 96.1%, 76.1%; and the kind of action: 95.8%, 78.4%); over the 606 of
    # 2026-12-04 (300 tasks added, longer and more specific): BM25F 89.8%, 61.9%; fused 95.0%, 71.8%,
    # re-ranked (catalog/_rerank.py) 95.7%, 77.4%; over the 756 with "development 3" (150 tasks that
    # avoid the tools' own words): BM25F 84.7%, 57.0%; fused 94.4%, 75.4%; over the 906 with "held out 3"
    # (150 more such): BM25F 82.1%, 54.2%; fused 93.0%, 73.0%
    assert len(missed) / len(tasks) <= {"bm25": 0.21, "fused": 0.09}[mode], missed
    assert first / len(tasks) >= {"bm25": 0.5, "fused": 0.7}[mode]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("post a message in the #general slack channel", "slack.chat_post_message"),
        ("send a text message to +14155550100", "twilio.create_message"),
        ("who is on call right now", "pagerduty.list_on_calls"),
        ("transcribe an audio recording to text", "openai.create_transcription"),
        ("find a slack user by their email address", "slack.users_lookup_by_email"),
        ("merge two incidents into one", "pagerduty.merge_incidents"),
        ("usersLookupByEmail", "slack.users_lookup_by_email"),
        ("createChatCompletion", "openai.create_chat_completion"),
        (
            "search for available local phone numbers in area code 415",
            "twilio.list_available_phone_number_local",
        ),
        ("create a maintenance window so no one gets paged", "pagerduty.create_maintenance_window"),
    ],
)
def test_fixed_tasks(public_apis: Hub, query: str, expected: str) -> None:
    assert expected in [h.tool.name for h in public_apis.catalog.search(query, limit=5).hits]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("fetch the stored chat completion chatcmpl-abc123", "openai.get_chat_completion"),
        ("which service accounts exist in project proj_alpha", "openai.list_project_service_accounts"),
        ("get an event by id", "pagerduty.get_event"),
        (
            "which teams can use an automation runner",
            "pagerduty.get_automation_actions_runner_team_associations",
        ),
        ("stop sharing a file publicly", "slack.files_revoke_public_url"),
    ],
)
def test_the_re_ranking_tells_near_neighbours_apart(public_apis: Hub, query: str, expected: str) -> None:
    """Development tasks the fused ranking alone put second (catalog/_rerank.py was fitted on them: a
    guard against regressions, not evidence; bench/tool_search.py's held-out part is)."""
    assert ranked(public_apis, query, "fused", 1).hits[0].tool.name == expected


@MODES
def test_no_match_tasks_are_answered_no_good_match(public_apis: Hub, mode: Mode) -> None:
    queries = [query for query, expected in labelled_tasks() if not expected]
    wrongly_good = [q for q in queries if ranked(public_apis, q, mode, 10).good]
    # 2 and 3 of 26 when written; of 54 since 2026-12-04 (28 added, some close to what the services do:
    # a fax through Twilio, a Slack huddle, an OpenAI invoice): 2 and 12 re-ranked, 9 with the fitted
    # boundary of catalog/_rerank.GOOD; of 58, 10 with the boundary over coverage and similarity, 7 with
    # the share of words no tool holds and the request's length too; of 68 (held out 3's added), 10
    assert len(wrongly_good) / len(queries) <= {"bm25": 0.12, "fused": 0.2}[mode], wrongly_good


@pytest.mark.parametrize("mode", ["bm25", "semantic"])
@pytest.mark.parametrize("seen", [{"slack", "twilio", "pagerduty"}, {"openai"}])
def test_a_filtered_search_is_the_whole_ranking_filtered(
    public_apis: Hub, mode: Mode, seen: set[str]
) -> None:
    """Only the best-scored tools are ordered; when the filter hides too many of them, all are."""
    catalog = public_apis.catalog
    for query in ("list the messages", "create a new user", "delete a file", "get the status"):
        whole = ranked(public_apis, query, mode, limit=len(catalog)).hits
        catalog.search_mode = mode
        try:
            found = catalog.search(query, limit=10, keep=lambda t: t.connector in seen).hits
        finally:
            catalog.search_mode = "fused"
        assert [h.tool.name for h in found] == [h.tool.name for h in whole if h.tool.connector in seen][:10]


def test_a_no_good_match_answer_counts_only_the_tools_the_caller_sees() -> None:
    index = SearchIndex(
        [
            tool("desk.list_incidents", "List incidents."),
            tool("desk.get_incidents_summary", "Summarise incidents."),
            tool("desk.list_invoices", "List invoices."),
            tool("mail.send_message", "Send an email."),
        ]
    )
    assert index.connectors() == {"desk": ["incidents", "summary", "invoices"], "mail": ["send", "message"]}
    hidden = {"desk.get_incidents_summary", "mail.send_message"}
    assert index.connectors(lambda t: t.name not in hidden) == {"desk": ["incidents", "invoices"]}


def test_adjacent_query_words_match_a_compound_in_a_name() -> None:
    assert compounds("add a user to the user group") == ["adduser", "useruser", "usergroup"]
    index = SearchIndex(
        [
            tool("chat.usergroups_create", "Create a usergroup."),
            tool("org.create_group", "Create a group."),
            tool("org.list_groups", "List the groups."),
            tool("org.delete_group", "Delete a group."),
            tool("org.create_user", "Create a user."),
            tool("org.list_users", "List the users."),
            tool("org.delete_user", "Delete a user."),
        ]
    )
    assert index.search("create a user group").hits[0].tool.name == "chat.usergroups_create"


def test_argument_errors_say_what_to_send_instead() -> None:
    schema = {
        "type": "object",
        "properties": {
            "filter": {"type": "object"},
            "ids": {"type": "array"},
            "count": {"type": "integer"},
            "urgent": {"type": "boolean"},
            "status": {"type": "string", "enum": ["triggered", "acknowledged", "resolved"]},
            "at": {"type": "string", "format": "date"},
            "tags": {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]},  # Optional
            "limit": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        },
    }
    catalog = Catalog()
    catalog.add(Tool("x.y", "x", "A tool.", schema))
    sent = {
        "filter": '{"a": 1}',
        "ids": "[1, 2]",
        "count": "5",
        "urgent": "true",
        "status": "acknowleged",
        "at": "12/02/2026",
        "tags": '["a"]',
        "limit": "5",
    }
    with pytest.raises(InvalidArguments) as info:
        catalog.validate(catalog.get("x.y"), sent, size=1, max_bytes=10_000)
    fixes = {e["field"]: e["error"].split("; ", 1)[1] for e in info.value.errors}
    assert fixes == {
        "filter": "that is a string holding JSON: send the object itself, not a string",
        "ids": "that is a string holding JSON: send the list itself, not a string",
        "count": "send 5 without quotes",
        "urgent": "send true without quotes",
        "status": "did you mean 'acknowledged'?",
        "at": "write it like '2026-12-02'",
        "tags": "that is a string holding JSON: send the list itself, not a string",
        "limit": "send 5 without quotes",
    }


def test_an_enum_value_in_another_case_and_a_value_for_a_list_get_their_fix() -> None:
    """'HIGH' got no "did you mean 'high'?" ('High' did: the match was case-sensitive), and a lone value
    sent for a list got no fix at all (found by an outside probe)."""
    schema = {
        "type": "object",
        "properties": {
            "priority": {"type": "string", "enum": ["low", "high", "urgent"]},
            "level": {"type": "string", "enum": ["P1", "P2"]},
            "items": {"type": "array", "items": {"type": "string"}},
            "counts": {"type": "array", "items": {"type": "integer"}},
            "labels": {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]},
        },
    }
    catalog = Catalog()
    catalog.add(Tool("x.y", "x", "A tool.", schema))
    sent = {"priority": "HIGH", "level": "p1", "items": "A1", "counts": 3, "labels": "red"}
    with pytest.raises(InvalidArguments) as info:
        catalog.validate(catalog.get("x.y"), sent, size=1, max_bytes=10_000)
    fixes = {e["field"]: e["error"].partition("; ")[2] for e in info.value.errors}
    assert fixes == {
        "priority": "did you mean 'high'?",
        "level": "did you mean 'P1'?",
        "items": 'send a list: ["A1"]',
        "counts": "send a list: [3]",
        "labels": 'send a list: ["red"]',
    }


def test_null_and_booleans_are_shown_as_json_with_what_to_send_instead() -> None:
    """'None is not of type 'integer'' and 'True is not of type …': Python's words for a JSON null and
    true, to an agent that wrote JSON, with nothing said about what to send."""
    schema = {
        "type": "object",
        "properties": {
            "quantity": {"type": "integer"},
            "name": {"type": "string"},
            "limit": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
            "flag": {"type": "boolean"},
        },
    }
    catalog = Catalog()
    catalog.add(Tool("x.y", "x", "A tool.", schema))
    sent = {"quantity": None, "name": True, "limit": False, "flag": None}
    with pytest.raises(InvalidArguments) as info:
        catalog.validate(catalog.get("x.y"), sent, size=1, max_bytes=10_000)
    errors = {e["field"]: e["error"] for e in info.value.errors}
    assert errors == {
        "quantity": "null is not of type 'integer'; send a whole number",
        "name": "true is not of type 'string'; send a string",
        "limit": "false is not valid under any of the given schemas; send a whole number or a string",
        "flag": "null is not of type 'boolean'; send true or false",
    }


@pytest.mark.anyio
async def test_the_index_can_be_built_off_the_event_loop_and_is_then_reused() -> None:
    catalog = Catalog()
    catalog.add(tool("mail.send", "Send an email."))
    assert not catalog.index_ready
    await catalog.prepare_search()
    assert catalog.index_ready
    catalog.add(tool("sms.send", "Send an SMS text to a phone."))
    assert not catalog.index_ready  # a change makes it stale: the next search (or prepare) rebuilds it
    assert catalog.search("text a phone").hits[0].tool.name == "sms.send"
    assert catalog.index_ready


def test_no_good_match_lists_the_connectors_with_their_one_line_descriptions() -> None:
    hub = Hub()
    hub.add_connector(
        OpenAPIConnector.from_spec(
            "desk", HERE.parent / "specs" / "incidents.json", base_url="http://127.0.0.1:9"
        )
    )
    answer = search_document(hub, Principal.agent("a", ["*"]), "book a flight to Paris")
    assert answer["good_match"] is False
    (desk,) = answer["connectors"]
    assert desk["name"] == "desk" and desk["covers"]
    assert desk["description"] == (
        "Incident desk (written for toolbridge's tests): A small incident API shaped like a paging "
        "service's: tags, DELETEs, a beta operation, an API-key scheme."
    )


def test_an_unknown_tag_lists_thirty_known_ones_and_counts_the_rest() -> None:
    catalog = Catalog(semantic=False)
    for n in range(35):
        catalog.add(Tool(f"api.op_{n}", "api", "An operation.", {"type": "object"}, tags=(f"group{n:02}",)))
    with pytest.raises(NotFound) as refused:
        search_document(Hub(catalog=catalog), Principal.agent("a", ["*"]), "op", tags=["nosuch"])
    assert refused.value.hint is not None
    assert "group00, group01" in refused.value.hint and refused.value.hint.endswith("group29 and 5 more")


def test_misspelt_words_are_read_as_the_words_the_catalog_uses(embedder: object) -> None:
    catalog = Catalog(embed_in_background=False)
    for name, description in [
        ("chat.post_message", "Post a message to a channel."),
        ("chat.delete_message", "Delete a message."),
        ("desk.create_incident", "Open an incident."),
        ("desk.get_incident", "Show one incident."),
        ("desk.get_incident_log", "Show the log entries of an incident."),
    ]:
        catalog.add(tool(name, description))
    hub, agent = Hub(catalog=catalog), Principal.agent("a", ["*"])
    answer = search_document(hub, agent, "post a mesage")
    assert answer["read_as"] == {"mesage": "message"}
    assert answer["tools"][0]["name"] == "chat.post_message" and "good_match" not in answer
    assert search_document(hub, agent, "Open an Incdient")["read_as"] == {"incdient": "incident"}
    # left as written: words of the language no tool uses, pieces of identifiers, short words, words
    # nothing is one edit from, and a word only one tool uses ("entries")
    for query in ("marketing message", "get incdient_12", "mesg", "xyzzyq incident", "show log entriess"):
        assert "read_as" not in search_document(hub, agent, query), query
    assert catalog.search("post a mesage").read_as == {"mesage": "message"}
    catalog.spelling = False
    assert not catalog.search("post a mesage").read_as


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("add a thumbs up raction to a message", "slack.reactions_add"),
        ("list open icnidents", "pagerduty.list_incidents"),
        ("list porjects in the organization", "openai.list_projects"),
        ("look up a text messsge I sent", "twilio.fetch_message"),
    ],
)
def test_a_misspelt_task_finds_its_tool(
    public_apis: Hub, embedder: object, query: str, expected: str
) -> None:
    """Development tasks with a seeded typo (bench/tool_search.misspelt) the search missed before
    misspelt words were read as the catalog's."""
    assert expected in [h.tool.name for h in public_apis.catalog.search(query, limit=5).hits]
