// An agent whose task asks it something, on the official TypeScript MCP client: node
// task_ask_agent.mjs URL KEY MODULES_DIR TOOL. It declares elicitation, answers "blue", runs TOOL
// {ask: true} as a task with the SDK's own driver (which calls tasks/result when the task needs input)
// and prints one JSON object with the requests it was asked and the messages it saw.
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [url, key, modules, tool] = process.argv.slice(2);
const sdk = (path) => import(pathToFileURL(join(modules, "@modelcontextprotocol", "sdk", "dist", "esm", path)).href);
const { Client } = await sdk("client/index.js");
const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");
const types = await sdk("types.js");

const headers = key === "-" ? {} : { Authorization: `Bearer ${key}` };
const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
const client = new Client(
  { name: "task-ask-agent", version: "1.0.0" },
  { capabilities: { elicitation: { form: {} }, tasks: { list: {}, cancel: {} } } },
);
const asked = [];
client.setRequestHandler(types.ElicitRequestSchema, (request) => {
  asked.push(request.params);
  return { action: "accept", content: { colour: "blue" } };
});
await client.connect(transport);
const messages = [];
const stream = client.experimental.tasks.callToolStream(
  { name: tool, arguments: { ask: true } },
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
await client.close();
process.stdout.write(JSON.stringify({ asked, messages }));
