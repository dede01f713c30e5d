// An agent that uses tasks, on the official TypeScript MCP client (installed in tests/node with
// server-everything, which it serves tasks with): node task_agent.mjs URL KEY SDK_DIR TOOL
// KEY may be "-" (no Authorization header). Prints one JSON object with what it saw.
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [url, key, sdk, tool] = process.argv.slice(2);
const load = (path) => import(pathToFileURL(join(sdk, "dist", "esm", path)).href);
const { Client } = await load("client/index.js");
const { StreamableHTTPClientTransport } = await load("client/streamableHttp.js");
const types = await load("types.js");

const headers = key === "-" ? {} : { Authorization: `Bearer ${key}` };
const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
const client = new Client(
  { name: "task-agent", version: "1.0.0" },
  { capabilities: { tasks: { list: {}, cancel: {} } } },
);
const statuses = [];
client.setNotificationHandler(types.TaskStatusNotificationSchema, (note) => {
  statuses.push({ taskId: note.params.taskId, status: note.params.status });
});
await client.connect(transport);
const seen = { capabilities: client.getServerCapabilities()?.tasks ?? null };

const { tools } = await client.listTools();
seen.execution = tools.find((t) => t.name === tool)?.execution ?? null;

// 1. a task run to its end by the SDK's own driver: CreateTaskResult, tasks/get polls, tasks/result
const messages = [];
const stream = client.experimental.tasks.callToolStream(
  { name: tool, arguments: { topic: "proxies" } },
  types.CallToolResultSchema,
  { task: { ttl: 60000 } },
);
for await (const message of stream) {
  if (message.type === "taskCreated" || message.type === "taskStatus") {
    messages.push({ type: message.type, taskId: message.task.taskId, status: message.task.status });
  } else if (message.type === "result") {
    messages.push({ type: "result", result: message.result });
  } else {
    messages.push({ type: message.type, error: String(message.error?.message ?? message.error) });
  }
}
seen.messages = messages;
const first = messages.find((m) => m.type === "taskCreated")?.taskId;

// 2. the finished task asked for again, and listed
seen.get = first ? await client.experimental.tasks.getTask(first) : null;
seen.list = (await client.experimental.tasks.listTasks()).tasks.map((t) => ({ taskId: t.taskId, status: t.status }));

// 3. a task cancelled while it runs
const created = await client.request(
  { method: "tools/call", params: { name: tool, arguments: { topic: "cancel me" }, task: { ttl: 60000 } } },
  types.CreateTaskResultSchema,
);
seen.created = created.task;
seen.cancelled = await client.experimental.tasks.cancelTask(created.task.taskId);
seen.afterCancel = await client.experimental.tasks.getTask(created.task.taskId);

// 4. a task id the agent was never given
try {
  await client.experimental.tasks.getTask("nobody/nothing");
  seen.unknown = null;
} catch (error) {
  seen.unknown = { code: error.code, message: error.message };
}
seen.statuses = statuses;
await client.close();
process.stdout.write(JSON.stringify(seen));
