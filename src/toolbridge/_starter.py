"""The commented starter file written by ``toolbridge init``."""

STARTER_CONFIG = """\
# toolbridge.yaml — what toolbridge serves. Reference: docs/configuration.md
version: 1

server:
  host: 127.0.0.1          # interface to bind; keep loopback unless a proxy sits in front
  port: 8080
  # SQLite file by default (relative to the working directory); PostgreSQL for replicas:
  #   database: postgresql://toolbridge@db.internal/toolbridge
  database: sqlite+aiosqlite:///.toolbridge/toolbridge.db
  max_body_bytes: 1048576  # larger requests get 413
  allowed_origins: []      # browser origins allowed to call /mcp (loopback is always allowed)

limits:
  max_argument_bytes: 1048576  # serialized tool arguments over this are refused
  max_result_bytes: 65536      # longer results are cut, with a marker telling the agent
  call_timeout: 60             # seconds a call may take in all

connectors:
  # A Python connector turns functions into tools named <connector>.<function>.
  # Type hints become the input schema, the docstring the description.
  # The folder of this file is on the import path, so 'mytools:hello' finds ./mytools.py.
  # demo:
  #   kind: python
  #   tools:
  #     - function: mytools:hello
  #       read_only: true        # never changes anything (agents with ':read' scopes may call it)
  #     - function: mytools:delete_everything
  #       destructive: true

agents:
  # Agents and their scopes. Scopes are tool patterns, optionally limited to read-only tools:
  #   '*'  everything;  'demo.*'  the demo connector;  '*:read'  every read-only tool.
  # Issue a key with: toolbridge agents create assistant
  # assistant:
  #   scopes: ['demo.*']
"""
