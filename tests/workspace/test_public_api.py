"""The workspace package's public surface is deliberate: sorted, complete, importable."""

import toolbridge.workspace as workspace


def test_all_is_sorted_and_importable() -> None:
    assert workspace.__all__ == sorted(workspace.__all__)
    for name in workspace.__all__:
        assert getattr(workspace, name) is not None
    assert {"Workspaces", "WorkspaceConnector", "BlobStore", "ImportSource", "Lease"} <= set(
        workspace.__all__
    )
